/**
 * Appendable objects through the one ObjectStore interface: both cloud drivers with their real
 * SDKs over HTTP against the emulators, and the local driver on disk.
 */
import * as crypto from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from '../../shared/errors';
import type { RetryPolicy } from '../../shared/retry';
import { createCosStore } from '../../shared/storage/cos';
import { APPENDABLE_MARKERS_DIR, createLocalStore } from '../../shared/storage/local';
import { createOssStore } from '../../shared/storage/oss';
import { isAppendRefused, MAX_APPENDABLE_BYTES, positionMismatch, type ObjectStore } from '../../shared/storage/types';
import { startCosEmulator, type FaultConfig, type RequestLogEntry, type StoredObject } from '../emulators/cos-emulator';
import { startOssEmulator } from '../emulators/oss-emulator';

const KEY_ID = 'test-key-id';
const SECRET = 'emulator-secret-A1b2';
const FAST_RETRY: Partial<RetryPolicy> = { maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 20, maxElapsedMs: 10_000 };

/** What the tests need from either emulator (their shapes match). */
interface Emulator {
  requests: RequestLogEntry[];
  objects: Map<string, StoredObject>;
  setFaults(f: Partial<FaultConfig>): void;
  setOutage(on: boolean): void;
  getObject(bucket: string, key: string): Buffer | undefined;
  close(): Promise<void>;
}

interface Cloud {
  name: 'oss' | 'cos';
  bucket: string;
  start(): Promise<Emulator & { endpoint: string }>;
  store(emulator: Emulator & { endpoint: string }, overrides?: { secret?: string; retry?: Partial<RetryPolicy> }): ObjectStore;
}

const CLOUDS: Cloud[] = [
  {
    name: 'oss',
    bucket: 'media-test',
    start: () => startOssEmulator({ accessKeyId: KEY_ID, accessKeySecret: SECRET }),
    store: (emulator, o = {}) => createOssStore({
      bucket: 'media-test',
      region: 'cn-hangzhou',
      endpoint: emulator.endpoint,
      credentials: { accessKeyId: KEY_ID, accessKeySecret: o.secret ?? SECRET },
      retry: o.retry ?? FAST_RETRY,
      timeoutMs: 5_000,
    }),
  },
  {
    name: 'cos',
    bucket: 'media-1250000000',
    start: () => startCosEmulator({ secretId: KEY_ID, secretKey: SECRET }),
    store: (emulator, o = {}) => createCosStore({
      bucket: 'media-1250000000',
      region: 'ap-guangzhou',
      endpoint: emulator.endpoint,
      credentials: { secretId: KEY_ID, secretKey: o.secret ?? SECRET },
      retry: o.retry ?? FAST_RETRY,
      timeoutMs: 5_000,
    }),
  },
];

async function rejection(promise: Promise<unknown>): Promise<StorageError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(StorageError);
  return error as StorageError;
}

/** Chunks of a recording: different sizes, random bytes. */
function chunks(): Buffer[] {
  return [crypto.randomBytes(1), crypto.randomBytes(70_000), Buffer.alloc(0), crypto.randomBytes(333)];
}

/** Appends each chunk at the position the previous append returned; checks each position. */
async function appendAll(store: ObjectStore, key: string, parts: Buffer[]): Promise<number> {
  let position = 0;
  for (const part of parts) {
    const result = await store.append(key, part, position, { contentType: 'video/x-flv' });
    expect(result).toMatchObject({ key, nextPosition: position + part.length, attempts: 1 });
    expect(result.resynced).toBeUndefined();
    position = result.nextPosition;
  }
  return position;
}

describe.each(CLOUDS)('$name append', (cloud) => {
  let emulator: Emulator & { endpoint: string };

  beforeEach(async () => {
    emulator = await cloud.start();
  });

  afterEach(async () => {
    await emulator.close();
  });

  const stored = (key: string) => emulator.getObject(cloud.bucket, key);
  const log = () => emulator.requests.map((r) => `${r.method} ${r.status}${r.fault ? ` ${r.fault}` : ''}`);

  it('creates an appendable object and appends at the returned positions, byte-exact', async () => {
    const store = cloud.store(emulator);
    const parts = chunks();

    const length = await appendAll(store, 'live/room.flv', parts);

    expect(stored('live/room.flv')?.equals(Buffer.concat(parts))).toBe(true);
    expect(length).toBe(Buffer.concat(parts).length);
    expect(await store.head('live/room.flv')).toEqual({ size: length, appendable: true, contentType: 'video/x-flv' });
    expect(emulator.requests.every((r) => r.method === 'POST' || r.method === 'HEAD')).toBe(true);
  });

  it('heads a missing, a normal and an appendable object', async () => {
    const store = cloud.store(emulator);
    await store.putBuffer('head/normal.jpg', Buffer.from('jpeg bytes'), { contentType: 'image/jpeg' });
    await store.append('head/appendable.flv', Buffer.from('flv bytes!'), 0, { contentType: 'video/x-flv' });

    expect(await store.head('head/missing.bin')).toBeNull();
    expect(await store.head('head/normal.jpg')).toEqual({ size: 10, appendable: false, contentType: 'image/jpeg' });
    expect(await store.head('head/appendable.flv')).toEqual({ size: 10, appendable: true, contentType: 'video/x-flv' });
  });

  it('fails a wrong position at once, with the object’s length', async () => {
    const store = cloud.store(emulator);
    await store.append('wrong/position.log', Buffer.from('12345'), 0);
    emulator.requests.length = 0;

    for (const position of [0, 4, 6]) {
      const error = await rejection(store.append('wrong/position.log', Buffer.from('x'), position));
      expect(positionMismatch(error)).toBe(5);
      expect(isAppendRefused(error)).toBe(false);
      expect(error).toMatchObject({
        retryable: false,
        attempts: 1,
        detail: { operation: 'append', status: 409, cloudCode: 'PositionNotEqualToLength', nextPosition: 5 },
      });
      expect(error.message).toContain('object length 5');
    }
    expect(log()).toEqual(['POST 409', 'POST 409', 'POST 409']);
    expect(stored('wrong/position.log')?.toString()).toBe('12345');
    // The length it gave is where the next append goes.
    expect((await store.append('wrong/position.log', Buffer.from('6'), 5)).nextPosition).toBe(6);
  });

  it('refuses to append to a normal object, and a put turns an appendable object normal', async () => {
    const store = cloud.store(emulator);
    await store.putBuffer('normal/snapshot.jpg', Buffer.from('normal'));

    const error = await rejection(store.append('normal/snapshot.jpg', Buffer.from('x'), 6));
    expect(isAppendRefused(error)).toBe(true);
    expect(positionMismatch(error)).toBeUndefined();
    expect(error).toMatchObject({ retryable: false, attempts: 1, detail: { status: 409, cloudCode: 'ObjectNotAppendable' } });

    await store.append('normal/was-appendable.flv', Buffer.from('abc'), 0);
    await store.putBuffer('normal/was-appendable.flv', Buffer.from('replaced'));
    expect(await store.head('normal/was-appendable.flv')).toMatchObject({ size: 8, appendable: false });
    expect(isAppendRefused(await rejection(store.append('normal/was-appendable.flv', Buffer.from('x'), 8)))).toBe(true);
  });

  it('reports a bucket that takes no appends as refused, without retrying', async () => {
    const store = cloud.store(emulator);
    emulator.setFaults({ refuseAppends: true });

    const error = await rejection(store.append('refused/room.flv', Buffer.from('x'), 0));

    expect(isAppendRefused(error)).toBe(true);
    expect(error.retryable).toBe(false);
    expect(log()).toEqual(['POST 409']);
    expect(stored('refused/room.flv')).toBeUndefined();
  });

  it('refuses more than 5 GiB before sending anything', async () => {
    const store = cloud.store(emulator);

    const error = await rejection(store.append('limit/room.flv', Buffer.alloc(2), MAX_APPENDABLE_BYTES - 1));

    expect(error).toMatchObject({ code: 'AppendLimit', retryable: false, detail: { operation: 'append' } });
    expect(isAppendRefused(error)).toBe(false);
    expect(emulator.requests).toEqual([]);
    // Up to the limit itself is the cloud's to judge.
    expect(positionMismatch(await rejection(store.append('limit/room.flv', Buffer.alloc(1), MAX_APPENDABLE_BYTES - 1)))).toBe(0);
  });

  it('resyncs after an applied append lost its answer: one copy of the bytes, reported as resynced', async () => {
    const store = cloud.store(emulator);
    await store.append('lost/room.flv', Buffer.from('head|'), 0);
    emulator.requests.length = 0;
    // Only the next request draws below the rate: the append is applied, its answer lost.
    const draws = [0];
    emulator.setFaults({ lostResponseRate: 0.5, random: () => draws.shift() ?? 1 });

    const result = await store.append('lost/room.flv', Buffer.from('tail'), 5);

    expect(result).toEqual({ key: 'lost/room.flv', nextPosition: 9, attempts: 2, resynced: true });
    expect(stored('lost/room.flv')?.toString()).toBe('head|tail');
    expect(log()).toEqual(['POST 0 lostResponse', 'HEAD 200']);
  });

  it('resends an append that was cut off before it was applied, after the HEAD shows it missing', async () => {
    const store = cloud.store(emulator);
    await store.append('cut/room.flv', Buffer.from('head|'), 0);
    emulator.requests.length = 0;
    const draws = [0];
    emulator.setFaults({ resetRate: 0.5, random: () => draws.shift() ?? 1 });

    const result = await store.append('cut/room.flv', crypto.randomBytes(4096), 5);

    expect(result).toMatchObject({ nextPosition: 5 + 4096, attempts: 2 });
    expect(result.resynced).toBeUndefined();
    expect(stored('cut/room.flv')?.length).toBe(5 + 4096);
    expect(log()).toEqual(['POST 0 reset', 'HEAD 200', 'POST 200']);
  });

  it('reports a mismatch when, after a lost answer, the object has a length it cannot explain', async () => {
    const store = cloud.store(emulator);
    const id = `${cloud.bucket}/other/room.flv`;
    await store.append('other/room.flv', Buffer.from('head|'), 0);
    emulator.requests.length = 0;
    // The append is applied and unanswered; before the HEAD, another writer appends 3 bytes.
    let draw = 0;
    emulator.setFaults({
      lostResponseRate: 0.5,
      random: () => {
        if (draw++ === 1) {
          const object = emulator.objects.get(id)!;
          emulator.objects.set(id, { ...object, body: Buffer.concat([object.body, Buffer.from('xyz')]) });
        }
        return draw === 1 ? 0 : 1;
      },
    });

    const error = await rejection(store.append('other/room.flv', Buffer.from('tail'), 5));

    expect(positionMismatch(error)).toBe(12);
    expect(error).toMatchObject({ retryable: false, attempts: 2 });
    expect(log()).toEqual(['POST 0 lostResponse', 'HEAD 200']);
  });

  it('still fails a wrong secret with a clear 403, once', async () => {
    const store = cloud.store(emulator, { secret: 'wrong-secret-Z3v6' });

    const error = await rejection(store.append('denied/room.flv', Buffer.from('x'), 0));

    expect(error).toMatchObject({ retryable: false, attempts: 1, detail: { operation: 'append', status: 403, cloudCode: 'SignatureDoesNotMatch' } });
    expect(error.message).toMatch(new RegExp(`^${cloud.name.toUpperCase()} append ${cloud.bucket}/denied/room\\.flv failed: HTTP 403 SignatureDoesNotMatch`));
    expect(isAppendRefused(error)).toBe(false);
    expect(positionMismatch(error)).toBeUndefined();
    expect(log()).toEqual(['POST 403']);
  });

  it('rides out an outage with a per-call retry policy that the store’s own would give up on', async () => {
    // The store's policy alone gives up after 2 attempts.
    const store = cloud.store(emulator, { retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 5, maxElapsedMs: 1_000 } });
    const longRetry = { retry: { maxAttempts: 50, maxElapsedMs: 10_000, baseDelayMs: 100, maxDelayMs: 500 } };
    await store.append('outage/room.flv', Buffer.from('head|'), 0);

    emulator.setFaults({ errorRate: 1 });
    expect(await rejection(store.append('outage/room.flv', Buffer.from('tail'), 5))).toMatchObject({ retryable: true, attempts: 2 });
    const started = Date.now();
    const ended = new Promise<void>((resolve) => setTimeout(() => {
      emulator.setFaults({ errorRate: 0 });
      resolve();
    }, 1_500));

    const [appended, put] = await Promise.all([
      store.append('outage/room.flv', Buffer.from('tail'), 5, longRetry),
      store.putBuffer('outage/snapshot.jpg', Buffer.from('jpeg'), longRetry),
    ]);
    await ended;

    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    expect(appended.nextPosition).toBe(9);
    expect(appended.attempts).toBeGreaterThan(2);
    expect(put.attempts).toBeGreaterThan(2);
    expect(stored('outage/room.flv')?.toString()).toBe('head|tail');
    expect(stored('outage/snapshot.jpg')?.toString()).toBe('jpeg');
    expect(emulator.requests.filter((r) => r.fault === 'error').length).toBeGreaterThan(4);
  });

  it('stops retrying when the signal aborts, without waiting out the backoff', async () => {
    const store = cloud.store(emulator);
    emulator.setOutage(true);
    const controller = new AbortController();
    let requestsAtAbort = Number.NaN;
    setTimeout(() => {
      requestsAtAbort = emulator.requests.length;
      controller.abort();
    }, 300);
    const started = Date.now();

    const error = await rejection(store.append('abort/room.flv', Buffer.from('x'), 0, {
      signal: controller.signal,
      retry: { maxAttempts: 50, maxElapsedMs: 10_000, baseDelayMs: 2_000, maxDelayMs: 2_000 },
    }));

    expect(Date.now() - started).toBeLessThan(1_500);
    expect(error).toMatchObject({ retryable: true, detail: { status: 503, cloudCode: 'ServiceUnavailable' } });
    // Backoff has full jitter, so how many attempts fit in the first 300 ms varies; what must not
    // happen is a new attempt after the abort (one already in flight may still arrive).
    expect(requestsAtAbort).toBeGreaterThanOrEqual(1);
    expect(emulator.requests.length).toBeLessThanOrEqual(requestsAtAbort + 1);
  });
});

describe('local append', () => {
  let root: string;
  let store: ObjectStore;

  beforeAll(async () => {
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'storage-append-'));
  });

  afterAll(async () => {
    await fsp.rm(root, { recursive: true, force: true });
  });

  beforeEach(async () => {
    store = createLocalStore({ root, bucket: `bucket-${crypto.randomBytes(4).toString('hex')}` });
  });

  const file = (key: string) => path.join(root, store.bucket, key);

  it('creates an appendable file and appends at the returned positions, byte-exact', async () => {
    const parts = chunks();

    const length = await appendAll(store, 'live/room.flv', parts);

    expect((await fsp.readFile(file('live/room.flv'))).equals(Buffer.concat(parts))).toBe(true);
    expect(await store.head('live/room.flv')).toEqual({ size: length, appendable: true });
    // The marker lives outside the bucket directory, in a hidden folder no bucket can be named.
    expect((await fsp.readdir(path.join(root, store.bucket), { recursive: true })).sort()).toEqual(['live', path.join('live', 'room.flv')]);
    expect((await fsp.readdir(root)).filter((name) => !name.startsWith('bucket-'))).toEqual([APPENDABLE_MARKERS_DIR]);
    expect((await fsp.stat(path.join(root, APPENDABLE_MARKERS_DIR, store.bucket, 'live', 'room.flv'))).size).toBe(0);
  });

  it('heads a missing, a normal and an appendable object', async () => {
    await store.putBuffer('head/normal.jpg', Buffer.from('jpeg bytes'));
    await store.append('head/appendable.flv', Buffer.from('flv bytes!'), 0);

    expect(await store.head('head/missing.bin')).toBeNull();
    expect(await store.head('head/normal.jpg')).toEqual({ size: 10, appendable: false });
    expect(await store.head('head/appendable.flv')).toEqual({ size: 10, appendable: true });
  });

  it('fails a wrong position with the file’s length, and a normal object as refused', async () => {
    await store.append('a.log', Buffer.from('12345'), 0);
    for (const position of [0, 4, 6]) {
      const error = await rejection(store.append('a.log', Buffer.from('x'), position));
      expect(positionMismatch(error)).toBe(5);
      expect(error.detail).toMatchObject({ cloud: 'local', cloudCode: 'PositionNotEqualToLength', nextPosition: 5 });
    }
    expect(positionMismatch(await rejection(store.append('missing.log', Buffer.from('x'), 3)))).toBe(0);

    await store.putBuffer('normal.jpg', Buffer.from('normal'));
    expect(isAppendRefused(await rejection(store.append('normal.jpg', Buffer.from('x'), 6)))).toBe(true);
    expect(isAppendRefused(await rejection(store.append('normal.jpg', Buffer.from('x'), 0)))).toBe(true);
    expect((await fsp.readFile(file('normal.jpg'))).toString()).toBe('normal');
  });

  it('turns an appendable object normal on a put', async () => {
    await store.append('was-appendable.flv', Buffer.from('abc'), 0);
    await store.putBuffer('was-appendable.flv', Buffer.from('replaced'));

    expect(await store.head('was-appendable.flv')).toEqual({ size: 8, appendable: false });
    expect(isAppendRefused(await rejection(store.append('was-appendable.flv', Buffer.from('x'), 8)))).toBe(true);
  });

  it('takes concurrent appends one at a time: exactly one wins each position', async () => {
    const bodies = Array.from({ length: 5 }, (_, i) => Buffer.from(`chunk-${i};`));

    const outcomes = await Promise.allSettled(bodies.map((body) => store.append('race.log', body, 0)));

    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') expect(positionMismatch(outcome.reason)).toBe(8);
    }
    expect((await fsp.readFile(file('race.log'))).length).toBe(8);
  });

  it('refuses more than 5 GiB, and keys outside the bucket', async () => {
    const error = await rejection(store.append('limit.flv', Buffer.alloc(2), MAX_APPENDABLE_BYTES - 1));
    expect(error.code).toBe('AppendLimit');
    await expect(fsp.stat(file('limit.flv'))).rejects.toMatchObject({ code: 'ENOENT' });

    await rejection(store.append('../escape.flv', Buffer.from('x'), 0));
    expect(await store.head('missing/../../escape.flv').catch((e: unknown) => e)).toBeInstanceOf(StorageError);
  });
});
