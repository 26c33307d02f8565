/**
 * The shared multipart orchestration against a fake cloud client: what the emulators cannot
 * show directly (how much of a pipe is held in memory, how many parts are in flight).
 */
import { Readable } from 'node:stream';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCloudStore, type CloudDriver } from '../../shared/storage/cloud-store';
import type { CloudClient, RetryableBody, UploadedPart } from '../../shared/storage/types';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

/** A cloud that stores parts after a short delay and records what it was sent. */
function fakeCloud(options: { failFirstAttemptOf?: number } = {}) {
  const parts = new Map<number, Buffer>();
  const bodies: RetryableBody[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let completedBytes = 0;
  let failed = false;
  const client: CloudClient = {
    put: async () => ({ etag: 'single' }),
    createMultipart: async () => 'upload-1',
    uploadPart: async (_key, _uploadId, partNumber, body) => {
      bodies.push(body);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 10));
      inFlight--;
      if (partNumber === options.failFirstAttemptOf && !failed) {
        failed = true;
        throw Object.assign(new Error('busy'), { status: 503 });
      }
      const bytes = Buffer.isBuffer(body) ? Buffer.from(body) : await readRange(body);
      parts.set(partNumber, bytes);
      completedBytes += bytes.length;
      return `etag-${partNumber}`;
    },
    completeMultipart: async (_key, _uploadId, uploaded: UploadedPart[]) => {
      expect(uploaded.map((p) => p.partNumber)).toEqual(uploaded.map((_, i) => i + 1));
      return { etag: 'multipart' };
    },
    abortMultipart: async () => undefined,
  };
  const driver: CloudDriver<null> = {
    cloud: 'oss',
    bucket: 'fake',
    connect: () => client,
    describeFailure: (error) => ({ status: (error as { status?: number }).status, noResponse: false }),
    expiredTokenCode: 'SecurityTokenExpired',
    objectUrl: (key) => key,
  };
  const store = createCloudStore(driver, {
    credentials: null,
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
    multipart: { thresholdBytes: MiB, partSizeBytes: MiB, parallelParts: 3 },
  });
  return {
    store,
    bodies,
    object: () => Buffer.concat([...parts.entries()].sort(([a], [b]) => a - b).map(([, body]) => body)),
    stats: () => ({ maxInFlight, completedBytes }),
  };
}

async function readRange(range: { path: string; start: number; length: number }): Promise<Buffer> {
  const handle = await fsp.open(range.path);
  try {
    const buffer = Buffer.alloc(range.length);
    await handle.read(buffer, 0, range.length, range.start);
    return buffer;
  } finally {
    await handle.close();
  }
}

describe('multipart orchestration', () => {
  it('holds at most parallelParts part buffers of a pipe, and keeps that many parts in flight', async () => {
    const cloud = fakeCloud();
    const size = 20 * MiB + 123;
    const expected = Buffer.alloc(size);
    for (let i = 0; i < size; i++) expected[i] = (i * 31) & 0xff;
    let pulled = 0;
    let worstHeld = 0;
    const source = new Readable({
      read() {
        const chunk = expected.subarray(pulled, pulled + CHUNK);
        pulled += chunk.length;
        // Bytes read from the pipe and not yet stored are what the upload holds in memory.
        worstHeld = Math.max(worstHeld, pulled - cloud.stats().completedBytes);
        this.push(chunk.length > 0 ? chunk : null);
      },
    });

    const result = await cloud.store.putStream('pipe.bin', source);

    expect(result.etag).toBe('multipart');
    expect(cloud.object().equals(expected)).toBe(true);
    expect(cloud.stats().maxInFlight).toBe(3);
    // Three part buffers, plus what the stream itself buffers ahead (its highWaterMark, one chunk here).
    expect(worstHeld).toBeLessThanOrEqual(3 * MiB + 2 * CHUNK);
  });

  it('sends file parts as ranges, not buffers, and retries a failed part on its own', async () => {
    const cloud = fakeCloud({ failFirstAttemptOf: 2 });
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'multipart-'));
    try {
      const body = Buffer.from(Array.from({ length: 5 * MiB + 7 }, (_, i) => (i * 7) & 0xff));
      const file = path.join(dir, 'large.bin');
      await fsp.writeFile(file, body);

      const result = await cloud.store.putFile('large.bin', file);

      expect(cloud.object().equals(body)).toBe(true);
      expect(result.attempts).toBe(2);
      expect(cloud.bodies.every((b) => !Buffer.isBuffer(b))).toBe(true);
      expect(cloud.bodies).toHaveLength(7);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
