/**
 * The SCF image-function contract (functions/scf-record/image-server.ts), served the two ways it
 * ships: from source (`npm run scf:image`, with the room simulator and the local store) and from
 * the built `dist/scf-record/image-server.js` (built here into a temporary folder by the same
 * buildFunctions as `npm run build`; about 2 s for the recorder without ffmpeg). Each runs as its
 * own process, as SCF runs the image, and gets what SCF sends: POST /event-invoke, the event as the
 * body, X-Scf-* headers. The function role's keys come only from those headers: the processes'
 * TENCENTCLOUD_* environment holds keys the TRTC API emulator does not know.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordResult } from '../../shared/recording/record-job';
import { buildFunctions } from '../../scripts/build';
import { ROOT } from '../../scripts/lib/bundle-config';
import { startTrtcApiEmulator, type TrtcApiEmulator } from '../emulators/trtc-api-emulator';

/** The role's temporary keys, as SCF puts them in X-Scf-Secret-Id / -Key / X-Scf-Session-Token. */
const roleKeys = { secretId: 'AKIDimageRoleTEST', secretKey: 'image-role-secret-key-0f9e8d', sessionToken: 'image-role-session-token-7c6b5a' };
const controlSecret = 'image-control-secret-3e1f9a7b5c2d4e6f';
const bucket = 'records-1250000000';
const userSig = 'eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwpklqUWpAFJ*ImageUserSig';
/** What must never show up in a log line. */
const secrets = [roleKeys.secretKey, roleKeys.sessionToken, controlSecret, userSig];

let trtc: TrtcApiEmulator;
let work: string;
let bucketRoot: string;
let distDir: string;

interface Served {
  url: string;
  proc: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
  /** Milliseconds from spawn to the listening line. */
  startupMs: number;
}
const servers: Served[] = [];

/** Starts a server process and waits for its listening line, which names the port it picked. */
async function serve(args: string[], env: Record<string, string>, listening: RegExp): Promise<Served> {
  const started = Date.now();
  const proc = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 30 s:\n${stderr}`)), 30_000);
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const match = listening.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    void exited.then((code) => reject(new Error(`exited (${code}) before listening:\n${stderr}`)));
  });
  const served = { url: `http://127.0.0.1:${port}`, proc, stderr: () => stderr, exited, startupMs: Date.now() - started };
  servers.push(served);
  return served;
}

const serverEnv = () => ({
  TRTC_API_ENDPOINT: trtc.endpoint,
  // Keys the emulator rejects: only the X-Scf-* headers' keys can succeed.
  TENCENTCLOUD_SECRETID: 'AKIDfromEnvironmentWRONG',
  TENCENTCLOUD_SECRETKEY: 'environment-key-the-emulator-rejects',
  CONTROL_SECRET: controlSecret,
  MEDIA_TMP_DIR: work,
  LOG_LEVEL: 'debug',
});

function scfHeaders(requestId: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'Content-Type': 'application/json',
    'X-Scf-Request-Id': requestId,
    'X-Scf-Secret-Id': roleKeys.secretId,
    'X-Scf-Secret-Key': roleKeys.secretKey,
    'X-Scf-Session-Token': roleKeys.sessionToken,
    'X-Scf-Timeout': '300000',
    'X-Scf-Memory': '1024',
    'X-Scf-Name': 'scf-record',
    'X-Scf-Namespace': 'default',
    'X-Scf-Region': 'ap-guangzhou',
    'X-Scf-Version': '$LATEST',
    ...extra,
  };
}

async function invoke(served: Served, body: unknown, headers: Record<string, string>) {
  const response = await fetch(`${served.url}/event-invoke`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: response.status, headers: response.headers, json: (await response.json()) as Record<string, unknown> };
}

const stop = (roomId: number) => ({ Action: 'Stop', SdkAppId: 1400000001, RoomId: roomId, UserId: 'recorder_img' });
const gatewayEvent = (body: unknown, headers: Record<string, string>) => ({
  requestContext: { serviceId: 'service-img', path: '/record', httpMethod: 'POST', requestId: 'gw-img', stage: 'release' },
  httpMethod: 'POST',
  path: '/record',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
  isBase64Encoded: false,
});

let fromSource: Served;
let fromDist: Served;

beforeAll(async () => {
  [trtc, work, bucketRoot] = await Promise.all([
    startTrtcApiEmulator(roleKeys),
    mkdtemp(join(tmpdir(), 'scf-image-')),
    mkdtemp(join(tmpdir(), 'scf-image-bucket-')),
  ]);
  distDir = join(work, 'dist');
  await buildFunctions({ outDir: distDir, functions: ['scf-record'], ffmpeg: false });
  const scenario = JSON.stringify({ anchors: [{ userId: 'erin' }], end: { at: 60, reason: 'dismissed' } });
  [fromSource, fromDist] = await Promise.all([
    serve(
      ['--import', 'tsx', 'scripts/scf-image.ts', '--port', '0', '--room', `sim:${scenario}`, '--local-bucket-root', bucketRoot],
      serverEnv(),
      /scf:image listening on http:\/\/127\.0\.0\.1:(\d+)\//,
    ),
    serve([join(distDir, 'scf-record', 'image-server.js')], { ...serverEnv(), PORT: '0' }, /"msg":"listening".*?"port":(\d+)/),
  ]);
});

afterAll(async () => {
  for (const served of servers) {
    try {
      process.kill(-served.proc.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await trtc?.close();
  if (work) await rm(work, { recursive: true, force: true });
  if (bucketRoot) await rm(bucketRoot, { recursive: true, force: true });
});

describe.each([
  ['from source (npm run scf:image)', () => fromSource, 7101],
  ['from the built dist/scf-record/image-server.js', () => fromDist, 7201],
] as const)('SCF image server %s', (_name, server, roomId) => {
  it('starts listening well within the 30 s SCF allows', () => {
    expect(server().startupMs).toBeLessThan(15_000);
  });

  it('POST /event-invoke: a Stop reaches the TRTC API signed with the X-Scf-* keys; the answer carries X-Scf-Request-Id', async () => {
    const callsBefore = trtc.calls.length;
    const answer = await invoke(server(), stop(roomId), scfHeaders(`img-stop-${roomId}`));
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toContain('application/json');
    expect(answer.json).toMatchObject({ RequestId: `img-stop-${roomId}`, Action: 'Stop', RoomId: roomId, TrtcRequestId: expect.any(String) });
    expect(trtc.calls.slice(callsBefore)).toEqual([expect.objectContaining({ action: 'RemoveUser', params: { SdkAppId: 1400000001, RoomId: roomId, UserIds: ['recorder_img'] } })]);
  });

  it('without the X-Scf-* keys the environment\'s keys are used (here: rejected by the TRTC API)', async () => {
    const { 'X-Scf-Secret-Id': _id, 'X-Scf-Secret-Key': _key, 'X-Scf-Session-Token': _token, ...headers } = scfHeaders(`img-envkeys-${roomId}`);
    const answer = await invoke(server(), stop(roomId), headers);
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ RequestId: `img-envkeys-${roomId}`, Error: { Code: 'RoomAdminError', Message: expect.stringContaining('AuthFailure.SecretIdNotFound') } });
  });

  it('an API-gateway event in the body gets the handler\'s HTTP response object back, with the Stop authorised by CONTROL_SECRET', async () => {
    const requestsBefore = trtc.requests.length;
    const refused = await invoke(server(), gatewayEvent(stop(roomId), {}), scfHeaders(`img-gw-refused-${roomId}`));
    expect(refused.status).toBe(200);
    expect(refused.json).toMatchObject({ statusCode: 401, headers: { 'WWW-Authenticate': 'Bearer realm="scf-record"' } });
    expect(trtc.requests.length).toBe(requestsBefore);

    const allowed = await invoke(server(), gatewayEvent(stop(roomId), { Authorization: `Bearer ${controlSecret}` }), scfHeaders(`img-gw-${roomId}`));
    expect(allowed.json).toMatchObject({ statusCode: 200, isBase64Encoded: false });
    expect(JSON.parse(allowed.json.body as string)).toMatchObject({ RequestId: `img-gw-${roomId}`, Action: 'Stop', TrtcRequestId: expect.any(String) });
    expect(trtc.requests.length).toBe(requestsBefore + 1);
  });

  it('answers 404 for other paths and 405 for other methods on /event-invoke', async () => {
    const notFound = await fetch(`${server().url}/`, { method: 'POST', body: JSON.stringify(stop(roomId)) });
    expect(notFound.status).toBe(404);
    await notFound.arrayBuffer();
    const webInvoke = await fetch(`${server().url}/web-invoke/anything`, { method: 'GET' });
    expect(webInvoke.status).toBe(404);
    await webInvoke.arrayBuffer();
    const wrongMethod = await fetch(`${server().url}/event-invoke`, { method: 'GET' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    await wrongMethod.arrayBuffer();
  });

  it('passes a body that is not JSON to the handler, which reports InvalidInput', async () => {
    const answer = await invoke(server(), '{"SdkAppId":', scfHeaders(`img-bad-${roomId}`));
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ RequestId: `img-bad-${roomId}`, Error: { Code: 'InvalidInput' } });
  });
});

describe('SCF image server from source: recording', () => {
  it('records with the room simulator into the local store, stopping before X-Scf-Timeout', async () => {
    const record = { SdkAppId: 1400000001, RoomId: 7301, UserId: 'recorder_img', UserSig: userSig, Mode: '00', CosConfig: { Region: 'ap-guangzhou', Bucket: bucket, Path: '/img/' } };
    const started = Date.now();
    // 4.5 s: recording stops a third of it (1.5 s) early to finalise.
    const answer = await invoke(fromSource, record, scfHeaders('img-record', { 'X-Scf-Timeout': '4500' }));
    expect(Date.now() - started).toBeLessThan(4_500);
    expect(answer.status).toBe(200);
    const result = answer.json as unknown as RecordResult;
    expect(result).toMatchObject({ RequestId: 'img-record', RoomId: 7301, StopReason: 'deadline' });
    expect(result.Files).toMatchObject([{ UserId: 'erin', Status: 1 }]);
    expect(await readdir(join(bucketRoot, bucket, 'img', '7301', 'erin'))).toHaveLength(1);
  });
});

describe('logs', () => {
  it('never contain the X-Scf-* keys, the control secret or the UserSig (captured stderr of both servers)', () => {
    for (const served of [fromSource, fromDist]) {
      const log = served.stderr();
      expect(log).toContain('"requestId":"img-stop-');
      expect(log).toContain('"requestId":"img-gw-refused-');
      for (const secret of secrets) expect(log, secret).not.toContain(secret);
    }
  });
});

describe('SIGTERM', () => {
  it('from source: stops accepting, lets the running recording finish and answers it, then exits 0', async () => {
    const record = { SdkAppId: 1400000001, RoomId: 7302, UserId: 'recorder_img', UserSig: userSig, Mode: '00', CosConfig: { Region: 'ap-guangzhou', Bucket: bucket, Path: '/img/' } };
    const running = invoke(fromSource, record, scfHeaders('img-sigterm'));
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    fromSource.proc.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // No new invocation is taken while draining: the listener is closed (or answers 503).
    const late = await fetch(`${fromSource.url}/event-invoke`, { method: 'POST', body: JSON.stringify(stop(7302)) }).then(
      (response) => response.status,
      () => 'refused' as const,
    );
    expect([503, 'refused']).toContain(late);
    const answer = await running;
    expect(answer.json).toMatchObject({ RequestId: 'img-sigterm', StopReason: 'terminated', Files: [{ UserId: 'erin', Status: 1 }] });
    expect(await fromSource.exited).toBe(0);
  });

  it('from dist, idle: exits 0 at once', async () => {
    const started = Date.now();
    fromDist.proc.kill('SIGTERM');
    expect(await fromDist.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(fromDist.stderr()).toContain('"msg":"stopped"');
  });
});

describe('npm run build', () => {
  it('puts image-server.js beside index.js, requiring it for the handler instead of carrying a second copy', async () => {
    const dir = join(distDir, 'scf-record');
    expect(existsSync(join(dir, 'index.js'))).toBe(true);
    const server = await readFile(join(dir, 'image-server.js'), 'utf8');
    expect(server).toContain('require("./index.js")');
    expect(server).not.toMatch(/functions\/scf-record\/event\.ts|node_modules\/zod\//);
    expect(server.length).toBeLessThan(64 * 1024);
  });
});
