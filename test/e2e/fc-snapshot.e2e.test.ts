import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnapshotHandler, type FcContext, type SnapshotHandlerResult } from '../../functions/fc-snapshot';
import { signCallback, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../shared/callback';
import type { SnapshotResult } from '../../shared/snapshot/job';
import { seededRandom } from '../emulators/emulator-kit';
import { startOssEmulator, type OssEmulator } from '../emulators/oss-emulator';
import { decodeImage, makeTestStream } from '../support/media-tools';
import { capturingStderr } from '../support/process';
import { publish, serveOnce, waitForPublishing } from '../support/publisher';
import { startNodeMediaServer, type RtmpServer } from '../support/rtmp-server';

const credentials = { accessKeyId: 'test-ak', accessKeySecret: 'test-secret-value' };
const bucket = 'snap-bucket';

let oss: OssEmulator;
let rtmp: RtmpServer;
let stream: string;
let sparseKeyframeStream: string;
let workRoot: string;
let streamCounter = 0;

beforeAll(async () => {
  [oss, rtmp, stream, sparseKeyframeStream, workRoot] = await Promise.all([
    startOssEmulator({ ...credentials }),
    startNodeMediaServer(),
    makeTestStream({ width: 640, height: 360, fps: 25, gopSeconds: 1, seconds: 12, audio: true }),
    makeTestStream({ width: 640, height: 360, fps: 25, gopSeconds: 4, seconds: 40 }),
    mkdtemp(join(tmpdir(), 'fc-e2e-')),
  ]);
});
afterAll(async () => {
  await Promise.all([oss?.close(), rtmp?.stop()]);
});

function handlerWith(env: Record<string, string> = {}) {
  return createSnapshotHandler({
    env: {
      OSS_ENDPOINT: oss.endpoint,
      ALIBABA_CLOUD_ACCESS_KEY_ID: credentials.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: credentials.accessKeySecret,
      MEDIA_TMP_DIR: workRoot,
      LOG_LEVEL: 'warn',
      ...env,
    },
  });
}

const context = (timeoutSec = 600): FcContext => ({ requestId: `req-${++streamCounter}`, function: { timeout: timeoutSec } });

function asSnapshotResult(result: SnapshotHandlerResult): SnapshotResult {
  expect(result.status, JSON.stringify(result)).not.toBe('invalid');
  return result as SnapshotResult;
}

async function startLiveStream(options: { loop?: boolean; file?: string } = {}) {
  const name = `s${++streamCounter}`;
  const url = rtmp.url(name);
  const publisher = publish(options.file ?? stream, url, { loop: options.loop });
  await waitForPublishing(rtmp, name, 15_000);
  return { url, publisher, dst: `cam/${name}` };
}

function storedKeys(prefix: string): string[] {
  return oss.listKeys(bucket, prefix);
}

/** Every key decodes, independently of the ffmpeg that wrote it, to exactly one picture of this size. */
async function expectAllDecode(keys: string[], format: string, size: { width: number; height: number }): Promise<void> {
  for (const key of keys) {
    const body = oss.getObject(bucket, key);
    expect(body, `object ${key}`).toBeDefined();
    expect(await decodeImage(body!, format), key).toEqual({ codec: format === 'jpg' ? 'mjpeg' : format, ...size, frames: 1 });
  }
}

describe('FC snapshot function, end to end (node-media-server, OSS emulator)', () => {
  it('ends within idle_timeout + 5 s after the publisher stops, with every snapshot, latest and manifest stored', async () => {
    const live = await startLiveStream();
    const job = handlerWith()(
      Buffer.from(JSON.stringify({ rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: live.dst, idle_timeout: 3, width: 320, latest: true })),
      context(),
    );
    await live.publisher.exited;
    const publisherGoneAt = Date.now();
    const result = asSnapshotResult(await job);
    expect(Date.now() - publisherGoneAt).toBeLessThan((3 + 5) * 1000);

    expect(result).toMatchObject({ status: 'ok', stop_reason: 'idle', reception: 'node-rtmp', decode: { images_from_gop: 0, gop_decoding_since: null }, failed_keys: [] });
    expect(result.counts.taken).toBeGreaterThanOrEqual(5);
    expect(result.counts.uploaded).toBe(result.counts.taken);

    const keys = storedKeys(`${live.dst}/`);
    const snapshots = keys.filter((key) => /\/\d{14}\.jpg$/.test(key));
    expect(snapshots).toHaveLength(result.counts.taken);
    expect(snapshots[0]).toBe(result.first_key);
    expect(snapshots.at(-1)).toBe(result.last_key);
    await expectAllDecode([...snapshots, `${live.dst}/latest.jpg`], 'jpg', { width: 320, height: 180 });

    expect(oss.getObject(bucket, `${live.dst}/latest.jpg`)!.equals(oss.getObject(bucket, result.last_key!)!)).toBe(true);

    const manifest = JSON.parse(oss.getObject(bucket, `${live.dst}/manifest.json`)!.toString());
    expect(manifest.snapshots.map((s: { key: string }) => s.key)).toEqual(snapshots);
    const streamTimes: number[] = manifest.snapshots.map((s: { stream_time: number }) => s.stream_time);
    for (let i = 1; i < streamTimes.length; i++) expect(streamTimes[i]! - streamTimes[i - 1]!).toBeCloseTo(1, 0);
    expect(manifest.snapshots.every((s: { status: string; uploaded_at: string }) => s.status === 'uploaded' && s.uploaded_at)).toBe(true);
  });

  it('stops before the function deadline with time left to flush', async () => {
    const live = await startLiveStream({ loop: true });
    const started = Date.now();
    try {
      const result = asSnapshotResult(
        await handlerWith()({ rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: live.dst }, context(9)),
      );
      expect(result).toMatchObject({ status: 'ok', stop_reason: 'deadline' });
      expect(Date.now() - started).toBeLessThan(9_000);
      expect(result.counts.taken).toBeGreaterThanOrEqual(3);
      expect(storedKeys(`${live.dst}/`)).toHaveLength(result.counts.taken + 2); // + manifest.json and its journal
    } finally {
      await live.publisher.stop();
    }
  });

  it('takes exactly max_snapshots, in webp at the requested interval', async () => {
    const live = await startLiveStream({ loop: true });
    try {
      const result = asSnapshotResult(
        await handlerWith()({ rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: live.dst, max_snapshots: 3, interval: 2, format: 'webp' }, context()),
      );
      expect(result).toMatchObject({ status: 'ok', stop_reason: 'max_snapshots', counts: { taken: 3, uploaded: 3, failed: 0 } });
      const manifest = JSON.parse(oss.getObject(bucket, `${live.dst}/manifest.json`)!.toString());
      const times = manifest.snapshots.map((s: { stream_time: number }) => s.stream_time);
      expect(times[2] - times[1]).toBeCloseTo(2, 0);
      await expectAllDecode(storedKeys(`${live.dst}/`).filter((k) => k.endsWith('.webp')), 'webp', { width: 640, height: 360 });
    } finally {
      await live.publisher.stop();
    }
  });

  it('decodes inside the GOP when keyframes are sparser than the interval, and still keeps the interval', async () => {
    const live = await startLiveStream({ file: sparseKeyframeStream });
    try {
      const result = asSnapshotResult(
        await handlerWith()({ rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: live.dst, max_duration: 26, idle_timeout: 6 }, context()),
      );
      expect(result).toMatchObject({ status: 'ok', stop_reason: 'max_duration' });
      // Keyframes every 4 s: three slots in four come from inside a GOP.
      expect(result.decode.images_from_gop).toBeGreaterThanOrEqual(2 * result.decode.images_from_keyframes);
      const manifest = JSON.parse(oss.getObject(bucket, `${live.dst}/manifest.json`)!.toString());
      expect(manifest.snapshots.filter((s: { decoded_from: string }) => s.decoded_from === 'gop').length).toBe(result.decode.images_from_gop);
      const times: number[] = manifest.snapshots.map((s: { stream_time: number }) => s.stream_time);
      expect(times.length).toBeGreaterThanOrEqual(20);
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeCloseTo(1, 0);
    } finally {
      await live.publisher.stop();
    }
  });

  it('reports "ended" when the source closes and does not come back', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const server = serveOnce(stream, port);
    await server.listening;
    const result = asSnapshotResult(
      await handlerWith()({ rtmp_url: `rtmp://127.0.0.1:${port}/live/s`, bucket, region: 'cn-hangzhou', dst: 'ended', idle_timeout: 3 }, context()),
    );
    await server.exited;
    expect(result).toMatchObject({ status: 'ok', stop_reason: 'ended' });
    expect(result.counts.uploaded).toBeGreaterThanOrEqual(5);
  });

  it('reports "error" when nothing can be reached within connect_timeout, says why in one line, without echoing URL credentials', async () => {
    const started = Date.now();
    const { value: result, lines: logLines } = await capturingStderr(async () =>
      asSnapshotResult(
        await handlerWith({ LOG_LEVEL: 'info' })(
          { rtmp_url: 'rtmp://viewer:pa55word@127.0.0.1:9/live/nothing?auth_key=1700000000-0-0-deadbeef', bucket, region: 'cn-hangzhou', connect_timeout: 6 },
          context(),
        ),
      ),
    );
    expect(result).toMatchObject({ status: 'error', stop_reason: 'error', counts: { taken: 0 }, error: { code: 'SourceUnavailable', message: 'nothing is listening at 127.0.0.1:9 (connection refused)' } });
    expect(result.source).toBe('rtmp://***@127.0.0.1:9/live/nothing?auth_key=***');
    expect(JSON.stringify(result)).not.toMatch(/pa55word|deadbeef/);
    expect(Date.now() - started).toBeLessThan(12_000);
    // About five refused connections in 6 s, one log line about them.
    const reconnectLines = logLines.filter((line) => line.includes('reconnecting'));
    expect(reconnectLines).toHaveLength(1);
    expect(logLines.join('')).not.toMatch(/pa55word|deadbeef/);
  });

  it('refuses a source host at a metadata address before ffmpeg starts', async () => {
    const invalid = await handlerWith()({ rtmp_url: 'http://100.100.100.200/latest/meta-data/ram/security-credentials/', bucket }, context());
    expect(invalid).toMatchObject({ status: 'invalid', error: { fields: [{ field: 'rtmp_url', message: 'must not point at a cloud metadata or link-local address' }] } });
    for (const rtmp_url of ['rtmp://2852039166/live/s', 'rtmp://[::ffff:a9fe:a9fe]/live/s', 'rtmp://metadata.tencentyun.com/live/s']) {
      expect(await handlerWith()({ rtmp_url, bucket, region: 'cn-hangzhou' }, context()), rtmp_url).toMatchObject({ status: 'invalid' });
    }
  });

  it("uses FC's context credentials before the environment's", async () => {
    const live = await startLiveStream({ loop: true });
    try {
      const result = asSnapshotResult(
        await handlerWith({ ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'stale-env-secret' })(
          { rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: live.dst, max_snapshots: 1 },
          { ...context(), credentials: { ...credentials } },
        ),
      );
      expect(result).toMatchObject({ status: 'ok', counts: { uploaded: 1 } });
    } finally {
      await live.publisher.stop();
    }
  });
});

describe('faults', () => {
  it('loses nothing when a fifth of storage requests fail or reset', async () => {
    const live = await startLiveStream();
    // Seeded: the first four requests meet a reset and two errors, however long the stream runs.
    oss.setFaults({ errorRate: 0.15, resetRate: 0.05, random: seededRandom(27) });
    try {
      const result = asSnapshotResult(
        await handlerWith()({ rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: live.dst, idle_timeout: 3, latest: true }, context()),
      );
      expect(result).toMatchObject({ status: 'ok', failed_keys: [] });
      expect(result.counts.uploaded).toBe(result.counts.taken);
      oss.setFaults({ errorRate: 0, resetRate: 0 });
      const snapshots = storedKeys(`${live.dst}/`).filter((k) => /\d{14}\.jpg$/.test(k));
      expect(snapshots).toHaveLength(result.counts.taken);
      await expectAllDecode([...snapshots, `${live.dst}/latest.jpg`], 'jpg', { width: 640, height: 360 });
      expect(oss.requests.some((r) => r.fault)).toBe(true);
    } finally {
      oss.setFaults({ errorRate: 0, resetRate: 0, random: Math.random });
    }
  });

  it('reports a wrong secret clearly, without echoing it, and still finishes', async () => {
    const live = await startLiveStream();
    const result = asSnapshotResult(
      await handlerWith({ ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'wrong-secret-zzz' })(
        { rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: live.dst, idle_timeout: 3, max_snapshots: 2 },
        context(),
      ),
    );
    // Nothing could be stored: that is an error, never a success.
    expect(result).toMatchObject({ status: 'error', error: { code: 'StorageError' } });
    expect(result.counts).toMatchObject({ taken: 2, uploaded: 0, failed: 2 });
    expect(result.failed_keys).toHaveLength(2);
    expect(JSON.stringify(result)).not.toMatch(/wrong-secret-zzz|test-secret-value/);
    await live.publisher.stop();
  });

  it('delivers a signed callback, and a callback that is down loses no snapshot', async () => {
    const received: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
    const receiver = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        received.push({ headers: request.headers, body });
        response.end('ok');
      });
    }).listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    const callback = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;

    const live = await startLiveStream({ loop: true });
    try {
      const handler = handlerWith({ CALLBACK_SECRET: 'cb-secret' });
      const delivered = asSnapshotResult(
        await handler({ rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: `${live.dst}/a`, max_snapshots: 2, callback }, context()),
      );
      expect(delivered.callback).toMatchObject({ delivered: true, attempts: 1, status: 200 });
      expect(received).toHaveLength(1);
      const { headers, body } = received[0]!;
      expect(JSON.parse(body)).toMatchObject({ request_id: delivered.request_id, counts: { uploaded: 2 } });
      expect(headers[SIGNATURE_HEADER]).toBe(`sha256=${signCallback('cb-secret', String(headers[TIMESTAMP_HEADER]), body)}`);

      receiver.close();
      const down = asSnapshotResult(
        await handler({ rtmp_url: live.url, bucket, region: 'cn-hangzhou', dst: `${live.dst}/b`, max_snapshots: 2, callback }, context()),
      );
      expect(down.callback).toMatchObject({ delivered: false, attempts: 3 });
      expect(down).toMatchObject({ status: 'ok', counts: { uploaded: 2 } });
    } finally {
      receiver.close();
      await live.publisher.stop();
    }
  });
});

describe('hostile input', () => {
  it('never reaches ffmpeg', async () => {
    const marker = join(workRoot, 'ffmpeg-was-called');
    const fakeFfmpeg = join(workRoot, 'fake-ffmpeg.sh');
    await writeFile(fakeFfmpeg, `#!/bin/sh\necho "$@" >> ${marker}\n`);
    await chmod(fakeFfmpeg, 0o755);
    const handler = handlerWith({ FFMPEG_PATH: fakeFfmpeg });
    const hostile = [
      { rtmp_url: 'file:///etc/passwd', bucket },
      { rtmp_url: 'concat:/etc/passwd|/etc/hosts', bucket },
      { rtmp_url: '-f lavfi -i testsrc', bucket },
      { rtmp_url: 'rtmp://h/a/s\r\n-y /tmp/x', bucket },
      { rtmp_url: 'rtmp://h/a/s', bucket: '../../etc' },
      { rtmp_url: 'rtmp://h/a/s', bucket, dst: '../../' },
      { rtmp_url: 'rtmp://h/a/s', bucket, extra: 'x' },
      '{"rtmp_url": ',
      42,
    ];
    for (const event of hostile) {
      const result = await handler(typeof event === 'string' ? Buffer.from(event) : event, context());
      expect(result.status, JSON.stringify(event)).toBe('invalid');
    }
    await expect(readFile(marker)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
