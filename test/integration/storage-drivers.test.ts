/**
 * Both cloud drivers against their emulators, with the real SDKs on the wire. One table of
 * clouds; every test body runs for each.
 */
import * as crypto from 'node:crypto';
import { createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readConfig } from '../../shared/config';
import { StorageError, ValidationError } from '../../shared/errors';
import { redact } from '../../shared/redact';
import type { RetryPolicy } from '../../shared/retry';
import {
  cosEndpointOptions, cosObjectUrl, COS_BUCKET_NAME, COS_SDK_ATTEMPTS_PER_CALL, createCosStore, isCosBucketName, resolveCosCredentials,
} from '../../shared/storage/cos';
import type { MultipartOptions } from '../../shared/storage/multipart';
import { createLocalStore } from '../../shared/storage/local';
import { createOssStore } from '../../shared/storage/oss';
import type { ObjectStore } from '../../shared/storage/types';
import { startCosEmulator, type FaultConfig, type RequestLogEntry } from '../emulators/cos-emulator';
import { seededRandom } from '../emulators/emulator-kit';
import { startOssEmulator } from '../emulators/oss-emulator';

const MiB = 1024 * 1024;
const KEY_ID = 'test-key-id';
const SECRET = 'emulator-secret-Q7w9x';
const TOKEN = 'sts-token-first-K2p4';
const NEXT_TOKEN = 'sts-token-second-M5r8';
/** Anything in here showing up in an error is a leak. */
const SECRETS = [SECRET, 'wrong-secret-Z3v6', TOKEN, NEXT_TOKEN];

/** Short backoff so fault runs stay fast; 8 attempts make a lost object (0.2^8 per call) vanishingly rare. */
const FAST_RETRY: Partial<RetryPolicy> = { maxAttempts: 8, baseDelayMs: 5, maxDelayMs: 50, maxElapsedMs: 30_000 };
const SMALL_PARTS: Partial<MultipartOptions> = { thresholdBytes: 4 * MiB, partSizeBytes: 4 * MiB, parallelParts: 4 };

/** What the tests need from either emulator (their shapes match). */
interface Emulator {
  endpoint: string;
  requests: RequestLogEntry[];
  setFaults(f: Partial<FaultConfig>): void;
  getObject(bucket: string, key: string): Buffer | undefined;
  listKeys(bucket: string, prefix?: string): string[];
  close(): Promise<void>;
}

interface StoreOverrides {
  secret?: string;
  /** Temporary credentials: the token the store starts with. */
  token?: string;
  /** Returns the next token; the store gets the same key pair with it. */
  refresh?: () => Promise<string>;
  retry?: Partial<RetryPolicy>;
  timeoutMs?: number;
  multipart?: Partial<MultipartOptions>;
  endpoint?: string;
}

interface Cloud {
  name: 'oss' | 'cos';
  bucket: string;
  start(sessionToken?: string): Promise<Emulator>;
  store(emulator: Emulator, overrides?: StoreOverrides): ObjectStore;
  installToken(emulator: Emulator, token: string): void;
  expiredTokenCode: string;
  /**
   * Requests one attempt of the shared policy can make, as the emulator logs them. COS's SDK core
   * retries a request without a stream body (initiate, complete, abort) up to 4 times itself.
   */
  requestsPerAttempt(request: RequestLogEntry): number;
}

const CLOUDS: Cloud[] = [
  {
    name: 'oss',
    bucket: 'media-test',
    start: (securityToken) => startOssEmulator({ accessKeyId: KEY_ID, accessKeySecret: SECRET, securityToken }),
    store: (emulator, o = {}) => createOssStore({
      bucket: 'media-test',
      region: 'cn-hangzhou',
      endpoint: o.endpoint ?? emulator.endpoint,
      credentials: { accessKeyId: KEY_ID, accessKeySecret: o.secret ?? SECRET, securityToken: o.token },
      refreshCredentials: o.refresh && (async () => ({ accessKeyId: KEY_ID, accessKeySecret: SECRET, securityToken: await o.refresh!() })),
      retry: o.retry ?? FAST_RETRY,
      timeoutMs: o.timeoutMs ?? 5_000,
      multipart: o.multipart,
    }),
    installToken: (emulator, token) =>
      (emulator as Awaited<ReturnType<typeof startOssEmulator>>).setCredentials({ accessKeyId: KEY_ID, accessKeySecret: SECRET, securityToken: token }),
    expiredTokenCode: 'SecurityTokenExpired',
    requestsPerAttempt: () => 1,
  },
  {
    name: 'cos',
    bucket: 'media-1250000000',
    start: (sessionToken) => startCosEmulator({ secretId: KEY_ID, secretKey: SECRET, sessionToken }),
    store: (emulator, o = {}) => createCosStore({
      bucket: 'media-1250000000',
      region: 'ap-guangzhou',
      endpoint: o.endpoint ?? emulator.endpoint,
      credentials: { secretId: KEY_ID, secretKey: o.secret ?? SECRET, sessionToken: o.token },
      refreshCredentials: o.refresh && (async () => ({ secretId: KEY_ID, secretKey: SECRET, sessionToken: await o.refresh!() })),
      retry: o.retry ?? FAST_RETRY,
      timeoutMs: o.timeoutMs ?? 5_000,
      multipart: o.multipart,
    }),
    installToken: (emulator, token) =>
      (emulator as Awaited<ReturnType<typeof startCosEmulator>>).setCredentials({ secretId: KEY_ID, secretKey: SECRET, sessionToken: token }),
    expiredTokenCode: 'ExpiredToken',
    requestsPerAttempt: (request) => (request.method === 'PUT' ? 1 : COS_SDK_ATTEMPTS_PER_CALL),
  },
];

let workDir: string;

beforeAll(async () => {
  workDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'storage-drivers-'));
});

afterAll(async () => {
  await fsp.rm(workDir, { recursive: true, force: true });
});

/** A reproducible byte stream (xorshift32), so big bodies need neither memory nor randomBytes. */
function deterministicBytes(size: number, seed: number): Readable {
  let state = seed >>> 0 || 1;
  let remaining = size;
  return new Readable({
    read() {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, remaining));
      for (let i = 0; i + 4 <= chunk.length; i += 4) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        chunk.writeUInt32LE(state >>> 0, i);
      }
      chunk.fill(7, chunk.length - (chunk.length % 4));
      remaining -= chunk.length;
      this.push(chunk);
      if (remaining === 0) this.push(null);
    },
  });
}

async function sha256(stream: Readable): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function sha256Of(body: Buffer | undefined): string | undefined {
  return body && crypto.createHash('sha256').update(body).digest('hex');
}

async function deterministicFile(name: string, size: number, seed: number): Promise<{ file: string; digest: string }> {
  const file = path.join(workDir, name);
  await pipeline(deterministicBytes(size, seed), createWriteStream(file));
  return { file, digest: await sha256(deterministicBytes(size, seed)) };
}


/**
 * Groups the logged requests by call (method, key and query are the same across retries of a
 * call) and checks each group against maxAttempts × what the SDK adds per attempt.
 */
function expectWithinRetryBound(cloud: Cloud, requests: RequestLogEntry[], maxAttempts: number): { calls: number; worst: number } {
  const calls = new Map<string, { count: number; bound: number }>();
  for (const request of requests) {
    const id = `${request.method} ${request.key} ${request.query}`;
    const call = calls.get(id) ?? { count: 0, bound: maxAttempts * cloud.requestsPerAttempt(request) };
    call.count++;
    calls.set(id, call);
  }
  for (const [id, call] of calls) expect(call.count, id).toBeLessThanOrEqual(call.bound);
  return { calls: calls.size, worst: Math.max(...[...calls.values()].map((c) => c.count)) };
}

function expectNoSecret(error: unknown): void {
  const texts = [JSON.stringify(error), (error as Error).message, JSON.stringify(redact(error))];
  for (const text of texts) for (const secret of SECRETS) expect(text).not.toContain(secret);
}

async function rejection(promise: Promise<unknown>): Promise<StorageError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(StorageError);
  return error as StorageError;
}

const AWKWARD_KEYS = [
  'with space/and  two  spaces.txt',
  'unicode/日本語-über-😀.bin',
  'plus+sign+.jpg',
  'percent%25and%literal',
  'hash#fragment',
  'question?mark=1&amp=2',
  "rfc3986 !'()* chars",
];

describe.each(CLOUDS)('$name driver', (cloud) => {
  let emulator: Emulator;

  beforeEach(async () => {
    emulator = await cloud.start();
  });

  afterEach(async () => {
    await emulator.close();
  });

  const stored = (key: string) => emulator.getObject(cloud.bucket, key);

  it('round-trips small objects byte-exact from a buffer, a file and a short pipe', async () => {
    const store = cloud.store(emulator);
    const body = crypto.randomBytes(100_000);
    const file = path.join(workDir, `${cloud.name}-small.jpg`);
    await fsp.writeFile(file, body);

    const results = await Promise.all([
      store.putBuffer('small/buffer.bin', body, { contentType: 'application/x-test' }),
      store.putFile('small/file.jpg', file, { contentType: 'image/jpeg' }),
      store.putStream('small/pipe.bin', Readable.from([body.subarray(0, 1000), body.subarray(1000)])),
      store.putBuffer('small/empty.bin', Buffer.alloc(0)),
    ]);

    for (const key of ['small/buffer.bin', 'small/file.jpg', 'small/pipe.bin']) expect(stored(key)?.equals(body), key).toBe(true);
    expect(stored('small/empty.bin')?.length).toBe(0);
    expect(results.map((r) => r.attempts)).toEqual([1, 1, 1, 1]);
    expect(results[0]!.etag).toBeTruthy();
    // Small bodies take a single put, never a multipart upload.
    expect(emulator.requests.map((r) => r.method)).toEqual(['PUT', 'PUT', 'PUT', 'PUT']);
  });

  it('keeps keys with spaces, unicode, +, %, # and ? intact, and builds URLs that decode to them', async () => {
    const store = cloud.store(emulator);
    for (const key of AWKWARD_KEYS) {
      await store.putBuffer(key, Buffer.from(key));
      expect(stored(key)?.toString(), key).toBe(key);
      const url = new URL(store.objectUrl(key));
      expect(url.search + url.hash, key).toBe('');
      expect(decodeURIComponent(url.pathname.slice(1)), key).toBe(key);
    }
    expect(emulator.listKeys(cloud.bucket).sort()).toEqual([...AWKWARD_KEYS].sort());
  });

  it('uploads a ≥ 50 MB file in parallel parts, byte-exact', async () => {
    const { file, digest } = await deterministicFile(`${cloud.name}-large.bin`, 52 * MiB + 12_345, 1);
    const store = cloud.store(emulator, { multipart: { partSizeBytes: 8 * MiB, parallelParts: 4 } });

    const result = await store.putFile('large/recording.mp4', file, { contentType: 'video/mp4' });

    expect(sha256Of(stored('large/recording.mp4'))).toBe(digest);
    expect(result.attempts).toBe(1);
    const parts = emulator.requests.filter((r) => r.method === 'PUT' && r.query.includes('partNumber'));
    expect(parts).toHaveLength(7);
    expect(emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
  });

  it('uploads a pipe of unknown length in parts, byte-exact', async () => {
    const size = 20 * MiB + 4_321;
    const store = cloud.store(emulator, { multipart: SMALL_PARTS });

    await store.putStream('pipe/recording.flv', deterministicBytes(size, 2), { contentType: 'video/x-flv' });

    expect(sha256Of(stored('pipe/recording.flv'))).toBe(await sha256(deterministicBytes(size, 2)));
    expect(emulator.requests.filter((r) => r.query.includes('partNumber'))).toHaveLength(6);
  });

  it('loses nothing under 20% injected faults, within the documented request bound', async () => {
    const store = cloud.store(emulator, { multipart: SMALL_PARTS });
    const { file, digest } = await deterministicFile(`${cloud.name}-faulty.bin`, 18 * MiB + 99, 3);
    const smallBodies = Array.from({ length: 30 }, (_, i) => crypto.randomBytes(2_000 + i));
    emulator.setFaults({ errorRate: 0.15, resetRate: 0.05, random: seededRandom(cloud.name === 'oss' ? 11 : 12) });

    const results = await Promise.all([
      ...smallBodies.map((body, i) => store.putBuffer(`faults/small-${i}.bin`, body)),
      store.putFile('faults/large.bin', file),
    ]);
    emulator.setFaults({ errorRate: 0, resetRate: 0 });

    smallBodies.forEach((body, i) => expect(stored(`faults/small-${i}.bin`)?.equals(body), `small-${i}`).toBe(true));
    expect(sha256Of(stored('faults/large.bin'))).toBe(digest);
    expect(emulator.requests.filter((r) => r.fault).length).toBeGreaterThan(5);
    expect(results.some((r) => r.attempts > 1)).toBe(true);
    expectWithinRetryBound(cloud, emulator.requests, FAST_RETRY.maxAttempts!);
  });

  it('makes exactly maxAttempts × the SDK’s own attempts on a persistent 503, then fails retryable', async () => {
    const store = cloud.store(emulator, { retry: { ...FAST_RETRY, maxAttempts: 3 }, multipart: SMALL_PARTS });
    emulator.setFaults({ errorRate: 1, errorStatuses: [503] });

    const put = await rejection(store.putBuffer('bound/put.bin', Buffer.from('x')));
    expect(put).toMatchObject({ retryable: true, attempts: 3, detail: { status: 503, cloudCode: 'ServiceUnavailable' } });
    expect(emulator.requests).toHaveLength(3);

    const { file } = await deterministicFile(`${cloud.name}-bound.bin`, 5 * MiB, 4);
    const initiate = await rejection(store.putFile('bound/large.bin', file));
    expect(initiate.detail.operation).toBe('initiate multipart upload');
    const initiateRequests = emulator.requests.slice(3);
    expect(initiateRequests).toHaveLength(3 * cloud.requestsPerAttempt(initiateRequests[0]!));
  });

  it('names the bucket and the cloud’s code on a wrong secret, without any secret', async () => {
    const store = cloud.store(emulator, { secret: 'wrong-secret-Z3v6' });

    const error = await rejection(store.putBuffer('denied/object.txt', Buffer.from('x')));

    expect(error.retryable).toBe(false);
    expect(error.detail).toMatchObject({
      cloud: cloud.name, bucket: cloud.bucket, key: 'denied/object.txt', status: 403, cloudCode: 'SignatureDoesNotMatch',
      requestId: expect.any(String),
    });
    expect(error.message).toContain(cloud.bucket);
    expect(error.message).toContain('SignatureDoesNotMatch');
    expect(emulator.requests).toHaveLength(1);
    expectNoSecret(error);
  });

  it('aborts the multipart upload when a part fails permanently', async () => {
    const store = cloud.store(emulator, { multipart: SMALL_PARTS });
    const { file } = await deterministicFile(`${cloud.name}-abort.bin`, 12 * MiB, 5);
    // The draw happens while the request being answered is the newest log entry.
    const isPartTwo = () => emulator.requests.at(-1)?.query.includes('partNumber=2') ?? false;
    emulator.setFaults({ errorRate: 0.5, errorStatuses: [400], random: () => (isPartTwo() ? 0 : 0.9) });

    const error = await rejection(store.putFile('abort/large.bin', file));

    expect(error).toMatchObject({ retryable: false, attempts: 1, detail: { operation: 'upload part 2', status: 400 } });
    expect(emulator.requests.at(-1)).toMatchObject({ method: 'DELETE', query: expect.stringContaining('uploadId=') });
    expect(emulator.requests.at(-1)?.status).toBe(204);
    expect(stored('abort/large.bin')).toBeUndefined();
  });

  it('aborts the multipart upload and types the error when the pipe fails', async () => {
    const store = cloud.store(emulator, { multipart: SMALL_PARTS });
    const source = deterministicBytes(10 * MiB, 6);
    const failing = Readable.from((async function* () {
      let sent = 0;
      for await (const chunk of source) {
        yield chunk as Buffer;
        sent += (chunk as Buffer).length;
        if (sent > 9 * MiB) throw new Error('encoder crashed');
      }
    })());

    const error = await rejection(store.putStream('abort/pipe.bin', failing));

    expect(error.message).toContain('encoder crashed');
    expect(error.detail).toMatchObject({ cloud: cloud.name, bucket: cloud.bucket, key: 'abort/pipe.bin' });
    expect(emulator.requests.at(-1)).toMatchObject({ method: 'DELETE', status: 204 });
    expect(failing.destroyed).toBe(true);
    expect(stored('abort/pipe.bin')).toBeUndefined();
  });

  it('retries responses slower than the client timeout', async () => {
    const store = cloud.store(emulator, { timeoutMs: 300 });
    emulator.setFaults({ slowRate: 0.4, slowMs: 1_000, random: seededRandom(21) });

    const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`slow ${i}`));
    const results = await Promise.all(bodies.map((body, i) => store.putBuffer(`slow/${i}.txt`, body)));

    bodies.forEach((body, i) => expect(stored(`slow/${i}.txt`)?.equals(body)).toBe(true));
    expect(emulator.requests.some((r) => r.fault === 'slow')).toBe(true);
    expect(results.some((r) => r.attempts > 1)).toBe(true);
  });

  it('handles a body-less 5xx (a plain object from the COS SDK) as a retryable StorageError', async () => {
    let hits = 0;
    const gateway = http.createServer((req, res) => {
      hits++;
      req.resume();
      res.writeHead(502, { 'x-oss-request-id': 'gw-req-1', 'x-cos-request-id': 'gw-req-1' }).end();
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    try {
      const port = (gateway.address() as AddressInfo).port;
      const store = cloud.store(emulator, { endpoint: `http://127.0.0.1:${port}`, retry: { ...FAST_RETRY, maxAttempts: 2 } });

      const error = await rejection(store.putBuffer('gateway/object.txt', Buffer.from('x')));

      expect(error).toMatchObject({ retryable: true, attempts: 2, detail: { status: 502 } });
      expect(error.message).toContain('HTTP 502');
      expect(hits).toBe(2);
    } finally {
      gateway.closeAllConnections();
      await new Promise((resolve) => gateway.close(resolve));
    }
  });

  describe('with temporary credentials', () => {
    beforeEach(async () => {
      await emulator.close();
      emulator = await cloud.start(TOKEN);
    });

    it('refreshes an expired token once, however many requests saw it, and retries', async () => {
      let refreshes = 0;
      const store = cloud.store(emulator, {
        token: TOKEN,
        refresh: async () => {
          refreshes++;
          cloud.installToken(emulator, NEXT_TOKEN);
          return NEXT_TOKEN;
        },
      });
      emulator.setFaults({ expiredTokenUntilRefresh: true });

      const bodies = Array.from({ length: 5 }, (_, i) => Buffer.from(`sts ${i}`));
      await Promise.all(bodies.map((body, i) => store.putBuffer(`sts/${i}.txt`, body)));

      bodies.forEach((body, i) => expect(stored(`sts/${i}.txt`)?.equals(body)).toBe(true));
      expect(refreshes).toBe(1);
      expect(emulator.requests.filter((r) => r.fault === 'expiredToken')).toHaveLength(5);
    });

    it('fails permanently on an expired token without a refresher, or when the refreshed one is expired too', async () => {
      emulator.setFaults({ expiredTokenUntilRefresh: true });
      const plain = await rejection(cloud.store(emulator, { token: TOKEN }).putBuffer('sts/none.txt', Buffer.from('x')));
      expect(plain).toMatchObject({ retryable: false, detail: { status: 403, cloudCode: cloud.expiredTokenCode } });
      expectNoSecret(plain);

      let refreshes = 0;
      const stale = cloud.store(emulator, { token: TOKEN, refresh: async () => (refreshes++, TOKEN) });
      const again = await rejection(stale.putBuffer('sts/stale.txt', Buffer.from('x')));
      expect(again).toMatchObject({ retryable: false, attempts: 2, detail: { cloudCode: cloud.expiredTokenCode } });
      expect(refreshes).toBe(1);
    });
  });
});

describe('COS bucket names, endpoints, URLs and credentials', () => {
  it('accepts <name>-<appid> and rejects anything else', () => {
    for (const good of ['media-1250000000', 'a-1', 'my-bucket-2-1300000000']) expect(isCosBucketName(good), good).toBe(true);
    for (const bad of ['media', 'Media-1250000000', '-media-1250000000', 'media--1250000000x', 'media_x-1250000000', 'media-12a']) {
      expect(isCosBucketName(bad), bad).toBe(false);
    }
    expect(COS_BUCKET_NAME.flags).not.toContain('g');
    expect(() => createCosStore({ bucket: 'no_appid', region: 'ap-guangzhou', credentials: { secretId: 'i', secretKey: 'k' } }))
      .toThrow(ValidationError);
  });

  it('maps an endpoint override to Protocol and Ip, and rejects one with a path', () => {
    expect(cosEndpointOptions('http://127.0.0.1:9001')).toEqual({ Protocol: 'http:', Ip: '127.0.0.1:9001' });
    expect(cosEndpointOptions('https://cos.internal.example:8443/')).toEqual({ Protocol: 'https:', Ip: 'cos.internal.example:8443' });
    expect(() => cosEndpointOptions('127.0.0.1:9001')).toThrow(/COS endpoint/);
    expect(() => cosEndpointOptions('http://127.0.0.1:9001/bucket')).toThrow(/COS endpoint/);
    expect(() => cosEndpointOptions('http://id:leaked-key@127.0.0.1:9001')).toThrow(expect.objectContaining({ message: expect.not.stringContaining('leaked') }));
  });

  it('encodes each key segment of the object URL', () => {
    expect(cosObjectUrl('media-1250000000', 'ap-guangzhou', 'a b/c+d%e#f?g/日.jpg'))
      .toBe('https://media-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b/c%2Bd%25e%23f%3Fg/%E6%97%A5.jpg');
  });

  it('prefers explicit keys, else the role keys read from the environment', () => {
    const config = readConfig({
      TENCENTCLOUD_SECRETID: 'env-id', TENCENTCLOUD_SECRETKEY: 'env-key', TENCENTCLOUD_SESSIONTOKEN: 'env-token', COS_ENDPOINT: 'http://127.0.0.1:9001',
    });
    expect(config.tencentCredentials).toEqual({ secretId: 'env-id', secretKey: 'env-key', sessionToken: 'env-token' });
    expect(config.cosEndpoint).toBe('http://127.0.0.1:9001');
    expect(resolveCosCredentials({ SecretId: 'job-id', SecretKey: 'job-key' }, config.tencentCredentials)).toEqual({ secretId: 'job-id', secretKey: 'job-key' });
    expect(resolveCosCredentials(undefined, config.tencentCredentials)).toEqual(config.tencentCredentials);
    expect(resolveCosCredentials({ SecretId: 'job-id' }, undefined)).toBeUndefined();
    expect(readConfig({ TENCENTCLOUD_SECRETID: 'only-id' }).tencentCredentials).toBeUndefined();
  });
});

describe('local store', () => {
  it('stores a pipe like the clouds do', async () => {
    const store = createLocalStore({ root: workDir, bucket: 'local' });
    await store.putStream('pipe/out.bin', deterministicBytes(3 * MiB, 9));
    const stored = await fsp.readFile(path.join(workDir, 'local', 'pipe', 'out.bin'));
    expect(sha256Of(stored)).toBe(await sha256(deterministicBytes(3 * MiB, 9)));
  });
});
