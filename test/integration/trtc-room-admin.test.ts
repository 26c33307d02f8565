/**
 * The TRTC room-admin client through the real tencentcloud-sdk-nodejs against the TC3-verifying
 * API emulator: both actions, auth failures, which failures are retried, and that only the trtc
 * client of the SDK is ever loaded.
 */
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { inspect, promisify } from 'node:util';
import type * as TrtcClientModule from 'tencentcloud-sdk-nodejs/tencentcloud/services/trtc/v20190722/trtc_client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readConfig } from '../../shared/config';
import { MediaError, RoomAdminError, ValidationError } from '../../shared/errors';
import { redact } from '../../shared/redact';
import type { RetryPolicy } from '../../shared/retry';
import {
  createRoomAdmin, resolveTrtcEndpoint, TRTC_API_HOST, type RoomAdmin, type RoomAdminOptions,
} from '../../shared/trtc/room-admin';
import { startTrtcApiEmulator, watchRoomEvents, type TrtcApiEmulator } from '../emulators/trtc-api-emulator';

const SECRET_ID = 'AKIDtrtcEmulatorKey01';
const SECRET_KEY = 'trtc-secret-Vb7n2Q';
const WRONG_SECRET = 'wrong-secret-Lx4k9P';
const TOKEN = 'sts-token-Rt5w8Z';
/** Anything in here showing up in an error is a leak. */
const SECRETS = [SECRET_KEY, WRONG_SECRET, TOKEN];
const SDK_APP_ID = 1400000001;
const FAST_RETRY: Partial<RetryPolicy> = { baseDelayMs: 5, maxDelayMs: 20 };
const ROOT = path.resolve(__dirname, '../..');

let emulator: TrtcApiEmulator;
beforeEach(async () => {
  emulator = await startTrtcApiEmulator({ secretId: SECRET_ID, secretKey: SECRET_KEY });
});
afterEach(async () => {
  await emulator.close();
});

function admin(overrides: Partial<RoomAdminOptions> = {}): RoomAdmin {
  return createRoomAdmin({
    credentials: { secretId: SECRET_ID, secretKey: SECRET_KEY },
    region: 'ap-guangzhou',
    endpoint: emulator.endpoint,
    retry: FAST_RETRY,
    ...overrides,
  });
}

async function failure(promise: Promise<unknown>): Promise<RoomAdminError> {
  const error = await promise.then(() => undefined, (err: unknown) => err);
  expect(error).toBeInstanceOf(RoomAdminError);
  return error as RoomAdminError;
}

function expectNoSecrets(error: Error): void {
  const renderings = [error.message, String(error), JSON.stringify(error), JSON.stringify(redact(error)), inspect(error, { depth: 5 })];
  for (const text of renderings) for (const secret of SECRETS) expect(text).not.toContain(secret);
}

describe('removeUser through the SDK', () => {
  it('calls RemoveUser for a numeric room id', async () => {
    const result = await admin().removeUser({ sdkAppId: SDK_APP_ID, roomId: 1234, userIds: ['recorder_1'] });
    expect(result).toMatchObject({ action: 'RemoveUser', attempts: 1 });
    expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(emulator.calls).toEqual([
      { action: 'RemoveUser', params: { SdkAppId: SDK_APP_ID, RoomId: 1234, UserIds: ['recorder_1'] }, region: 'ap-guangzhou', kickedWatchers: 0 },
    ]);
  });

  it('calls RemoveUserByStrRoomId for a string room id', async () => {
    const result = await admin({ region: 'ap-singapore' }).removeUser({ sdkAppId: SDK_APP_ID, strRoomId: 'class-7b', userIds: ['a', 'b'] });
    expect(result.action).toBe('RemoveUserByStrRoomId');
    expect(emulator.calls).toEqual([
      { action: 'RemoveUserByStrRoomId', params: { SdkAppId: SDK_APP_ID, RoomId: 'class-7b', UserIds: ['a', 'b'] }, region: 'ap-singapore', kickedWatchers: 0 },
    ]);
  });

  it('uses the numeric room id when both are given', async () => {
    await admin().removeUser({ sdkAppId: SDK_APP_ID, roomId: 42, strRoomId: 'ignored', userIds: ['u'] });
    expect(emulator.calls.map((call) => [call.action, call.params.RoomId])).toEqual([['RemoveUser', 42]]);
  });

  it('hands each accepted call to the onRemoveUser hooks', async () => {
    const kicked: string[] = [];
    emulator.onRemoveUser((call) => kicked.push(...call.params.UserIds));
    await admin().removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['recorder_1'] });
    expect(kicked).toEqual(['recorder_1']);
  });

  it('sends the session token of temporary keys', async () => {
    const withToken = await startTrtcApiEmulator({ secretId: SECRET_ID, secretKey: SECRET_KEY, sessionToken: TOKEN });
    try {
      const credentials = { secretId: SECRET_ID, secretKey: SECRET_KEY, sessionToken: TOKEN };
      await admin({ credentials, endpoint: withToken.endpoint }).removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] });
      expect(withToken.calls).toHaveLength(1);
      const error = await failure(admin({ endpoint: withToken.endpoint }).removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] }));
      expect(error.detail.cloudCode).toBe('AuthFailure.TokenFailure');
    } finally {
      await withToken.close();
    }
  });

  it('keeps to its endpoint when http_proxy is set (the SDK would otherwise use it, ignoring NO_PROXY)', async () => {
    const saved = { http_proxy: process.env.http_proxy, NO_PROXY: process.env.NO_PROXY };
    process.env.http_proxy = 'http://127.0.0.1:9';
    process.env.NO_PROXY = '*';
    try {
      await admin().removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] });
      expect(emulator.calls).toHaveLength(1);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});

describe('failures', () => {
  it('reports a wrong secret as AuthFailure.SignatureFailure, once, without the secret', async () => {
    const credentials = { secretId: SECRET_ID, secretKey: WRONG_SECRET, sessionToken: TOKEN };
    const error = await failure(admin({ credentials }).removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] }));
    expect(error).toMatchObject({ code: 'RoomAdminError', retryable: false, attempts: 1 });
    expect(error.detail).toMatchObject({ action: 'RemoveUser', cloudCode: 'AuthFailure.SignatureFailure' });
    expect(error.detail.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(error.message).toContain('AuthFailure.SignatureFailure');
    expect(error.message).toContain(error.detail.requestId);
    expectNoSecrets(error);
    expect(emulator.requests).toEqual([{ action: 'RemoveUser', errorCode: 'AuthFailure.SignatureFailure' }]);
    expect(emulator.calls).toEqual([]);
  });

  it('reports an unknown SecretId as AuthFailure.SecretIdNotFound', async () => {
    const credentials = { secretId: 'AKIDunknown', secretKey: SECRET_KEY };
    const error = await failure(admin({ credentials }).removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] }));
    expect(error).toMatchObject({ retryable: false, detail: { cloudCode: 'AuthFailure.SecretIdNotFound' } });
    expect(emulator.requests).toHaveLength(1);
  });

  it('reports a timestamp more than five minutes off as AuthFailure.SignatureExpire', async () => {
    const skewed = await startTrtcApiEmulator({ secretId: SECRET_ID, secretKey: SECRET_KEY, now: () => Date.now() + 6 * 60_000 });
    try {
      const error = await failure(admin({ endpoint: skewed.endpoint }).removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] }));
      expect(error).toMatchObject({ retryable: false, detail: { cloudCode: 'AuthFailure.SignatureExpire' } });
    } finally {
      await skewed.close();
    }
  });

  it('rejects a request signed for an IP endpoint: the SDK signs as service "127"', async () => {
    const { Client } = require('tencentcloud-sdk-nodejs/tencentcloud/services/trtc/v20190722/trtc_client') as typeof TrtcClientModule;
    const client = new Client({
      credential: { secretId: SECRET_ID, secretKey: SECRET_KEY },
      region: 'ap-guangzhou',
      profile: { httpProfile: { endpoint: emulator.endpoint.replace('http://', ''), protocol: 'http://', agent: new http.Agent() } },
    });
    await expect(client.RemoveUser({ SdkAppId: SDK_APP_ID, RoomId: 1, UserIds: ['u'] }))
      .rejects.toMatchObject({ code: 'AuthFailure.SignatureFailure', message: expect.stringContaining("service is '127'") });
  });

  it.each(['InternalError', 'RequestLimitExceeded.UinLimitExceeded'])('retries %s, then succeeds', async (code) => {
    emulator.failNext(2, code);
    const result = await admin().removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] });
    expect(result.attempts).toBe(3);
    expect(emulator.requests.map((request) => request.errorCode)).toEqual([code, code, undefined]);
    expect(emulator.calls).toHaveLength(1);
  });

  it('gives up on InternalError after three attempts, as retryable', async () => {
    emulator.failNext(5, 'InternalError');
    const error = await failure(admin().removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] }));
    expect(error).toMatchObject({ retryable: true, attempts: 3, detail: { cloudCode: 'InternalError' } });
    expect(emulator.requests).toHaveLength(3);
  });

  it.each(['InvalidParameter', 'InvalidParameterValue.RoomId', 'ResourceNotFound.RoomNotExist'])('does not retry %s', async (code) => {
    emulator.failNext(1, code);
    const error = await failure(admin().removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] }));
    expect(error).toMatchObject({ retryable: false, attempts: 1, detail: { cloudCode: code } });
    expect(emulator.requests).toHaveLength(1);
  });

  it('retries when no answer comes back, within the bound', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const error = await failure(admin({ endpoint: `http://127.0.0.1:${port}` }).removeUser({ sdkAppId: SDK_APP_ID, roomId: 1, userIds: ['u'] }));
    expect(error).toMatchObject({ retryable: true, attempts: 3 });
    expect(error.detail.cloudCode).toBeUndefined();
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('refuses a bad request before sending it', async () => {
    const client = admin();
    const bad = [
      { sdkAppId: SDK_APP_ID, userIds: ['u'] },
      { sdkAppId: SDK_APP_ID, roomId: 1.5, userIds: ['u'] },
      { sdkAppId: 0, roomId: 1, userIds: ['u'] },
      { sdkAppId: SDK_APP_ID, roomId: 1, userIds: [] },
      { sdkAppId: SDK_APP_ID, strRoomId: 'r', userIds: Array.from({ length: 11 }, (_, i) => `u${i}`) },
    ];
    for (const request of bad) await expect(client.removeUser(request)).rejects.toBeInstanceOf(ValidationError);
    expect(emulator.requests).toEqual([]);
  });
});

describe('endpoint and config', () => {
  it('signs for trtc.tencentcloudapi.com and connects to the override host', () => {
    expect(resolveTrtcEndpoint()).toEqual({ endpoint: TRTC_API_HOST, protocol: 'https://' });
    expect(resolveTrtcEndpoint('http://127.0.0.1:9003')).toEqual({ endpoint: `${TRTC_API_HOST}:9003`, protocol: 'http://', connectHost: '127.0.0.1' });
    expect(resolveTrtcEndpoint('http://[::1]:9003/')).toEqual({ endpoint: `${TRTC_API_HOST}:9003`, protocol: 'http://', connectHost: '::1' });
    expect(resolveTrtcEndpoint('http://trtc-emulator')).toEqual({ endpoint: TRTC_API_HOST, protocol: 'http://', connectHost: 'trtc-emulator' });
    expect(resolveTrtcEndpoint('https://trtc.intl.tencentcloudapi.com')).toEqual({ endpoint: 'trtc.intl.tencentcloudapi.com', protocol: 'https://' });
    for (const bad of ['127.0.0.1:9003', 'ftp://host', 'http://host/path', 'http://user:pass@host']) {
      expect(() => resolveTrtcEndpoint(bad)).toThrow(MediaError);
      expect(() => resolveTrtcEndpoint(bad)).toThrow(/must look like/);
    }
  });

  it('reads TRTC_API_ENDPOINT and TRTC_REGION, defaulting the region to ap-guangzhou', () => {
    expect(readConfig({})).toMatchObject({ trtcRegion: 'ap-guangzhou', trtcApiEndpoint: undefined });
    expect(readConfig({ TRTC_API_ENDPOINT: ' http://127.0.0.1:9003 ', TRTC_REGION: 'ap-beijing' }))
      .toMatchObject({ trtcApiEndpoint: 'http://127.0.0.1:9003', trtcRegion: 'ap-beijing' });
  });
});

describe('room events: what a simulated room in another process hears of RemoveUser', () => {
  const until = async (what: string, done: () => boolean) => {
    for (const deadline = Date.now() + 5_000; !done(); await new Promise((resolve) => setTimeout(resolve, 10))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    }
  };

  it('kicks exactly the watchers a call names: same application, same kind of room id, same room, a named user', async () => {
    const kicked: string[] = [];
    const problems: string[] = [];
    const targets = {
      numeric: { sdkAppId: SDK_APP_ID, roomId: 7, userId: 'recorder_1' },
      string: { sdkAppId: SDK_APP_ID, strRoomId: '7', userId: 'recorder_1' },
      otherUser: { sdkAppId: SDK_APP_ID, roomId: 7, userId: 'recorder_2' },
      otherRoom: { sdkAppId: SDK_APP_ID, roomId: 8, userId: 'recorder_1' },
      otherApp: { sdkAppId: SDK_APP_ID + 1, roomId: 7, userId: 'recorder_1' },
    };
    const watches = Object.entries(targets).map(([name, target]) =>
      watchRoomEvents(emulator.endpoint, target, { kicked: () => kicked.push(name), problem: (message) => problems.push(message) }),
    );
    await until('five watchers', () => emulator.roomWatchers() === 5);

    await admin().removeUser({ sdkAppId: SDK_APP_ID, roomId: 7, userIds: ['recorder_1', 'someone'] });
    await until('the numeric kick', () => kicked.length === 1);
    await admin().removeUser({ sdkAppId: SDK_APP_ID, strRoomId: '7', userIds: ['recorder_1'] });
    await until('the string kick', () => kicked.length === 2);

    expect(kicked).toEqual(['numeric', 'string']);
    expect(emulator.calls.map((call) => call.kickedWatchers)).toEqual([1, 1]);
    expect(emulator.roomWatchers()).toBe(3);
    watches.forEach((watch) => watch.close());
    await until('the others to go', () => emulator.roomWatchers() === 0);
    expect(problems).toEqual([]);
  });

  it('tells, once, when the endpoint is not the emulator', async () => {
    const server = http.createServer((_req, res) => res.writeHead(404).end()).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const problems: string[] = [];
    try {
      watchRoomEvents(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { sdkAppId: SDK_APP_ID, roomId: 7, userId: 'u' }, { kicked: () => undefined, problem: (m) => problems.push(m) });
      await until('the problem', () => problems.length > 0);
      expect(problems).toEqual([expect.stringMatching(/answered 404 .*not the TRTC API emulator$/)]);
    } finally {
      server.close();
    }
  });
});

describe('loading', () => {
  it('loads only the trtc client of the SDK, and only once a client is created', async () => {
    // A fresh process, so no other test's imports are in require.cache.
    const script = `
      const sdkModules = () => Object.keys(require.cache)
        .filter((key) => key.includes('tencentcloud-sdk-nodejs'))
        .map((key) => key.slice(key.indexOf('tencentcloud-sdk-nodejs/') + 'tencentcloud-sdk-nodejs/'.length));
      const { createRoomAdmin } = require('./shared/trtc/room-admin');
      const afterImport = sdkModules();
      const admin = createRoomAdmin({
        credentials: { secretId: ${JSON.stringify(SECRET_ID)}, secretKey: ${JSON.stringify(SECRET_KEY)} },
        region: 'ap-guangzhou',
        endpoint: ${JSON.stringify(emulator.endpoint)},
      });
      admin.removeUser({ sdkAppId: ${SDK_APP_ID}, roomId: 7, userIds: ['u'] })
        .then((result) => console.log(JSON.stringify({ afterImport, afterUse: sdkModules(), result })));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--require', 'tsx/cjs', '-e', script], { cwd: ROOT });
    const { afterImport, afterUse, result } = JSON.parse(stdout) as { afterImport: string[]; afterUse: string[]; result: unknown };
    expect(afterImport).toEqual([]);
    expect(result).toMatchObject({ action: 'RemoveUser', attempts: 1 });
    expect(afterUse).toContain('tencentcloud/services/trtc/v20190722/trtc_client.js');
    expect(afterUse).not.toContain('tencentcloud/index.js');
    expect(afterUse).not.toContain('tencentcloud/services/index.js');
    const services = new Set(afterUse.flatMap((key) => /^tencentcloud\/services\/([^/]+)\//.exec(key)?.[1] ?? []));
    expect([...services]).toEqual(['trtc']);
    expect(afterUse).not.toContain('tencentcloud/services/trtc/index.js');
  });
});
