/**
 * The snapshot function records the stream it watches (`record`): a stream copy appended into
 * OSS while capturing, next to unchanged snapshots. Every stored object is decoded by ffprobe;
 * the recording is played and seeked in Chromium; a SIGKILL mid-capture leaves a recording in
 * the bucket that plays up to seconds before the kill.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnapshotHandler, type SnapshotHandlerResult } from '../../functions/fc-snapshot';
import type { SnapshotResult } from '../../shared/snapshot/job';
import { startOssEmulator, type OssEmulator } from '../emulators/oss-emulator';
import { describeWithBrowser, startStaticServer, type StaticServer } from '../support/browser';
import { decodeImage, decodeMedia, makeTestStream } from '../support/media-tools';
import { publish, waitForPublishing } from '../support/publisher';
import { startNodeMediaServer, type RtmpServer } from '../support/rtmp-server';

const credentials = { accessKeyId: 'record-ak', accessKeySecret: 'record-secret-value' };
const bucket = 'record-bucket';
let oss: OssEmulator;
let rtmp: RtmpServer;
let stream: string;
let root: string;
let recorded: { result: SnapshotResult; mp4: Buffer } | undefined;

beforeAll(async () => {
  [oss, rtmp, stream, root] = await Promise.all([
    startOssEmulator({ ...credentials }),
    startNodeMediaServer(),
    makeTestStream({ width: 640, height: 360, fps: 25, gopSeconds: 1, seconds: 12, audio: true }),
    mkdtemp(join(tmpdir(), 'snapshot-record-')),
  ]);
});
afterAll(async () => {
  await Promise.all([oss?.close(), rtmp?.stop()]);
});

async function liveStream(name: string) {
  const publisher = publish(stream, rtmp.url(name), { loop: true });
  await waitForPublishing(rtmp, name, 15_000);
  return publisher;
}

describe('record: "mp4"', () => {
  it('stores a snapshot a second as before, and one MP4 that decodes to the capture’s 30 s', async () => {
    const publisher = await liveStream('rec30');
    try {
      const handler = createSnapshotHandler({
        env: { OSS_ENDPOINT: oss.endpoint, ALIBABA_CLOUD_ACCESS_KEY_ID: credentials.accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: credentials.accessKeySecret, MEDIA_TMP_DIR: join(root, 'work'), LOG_LEVEL: 'warn' },
      });
      const raw: SnapshotHandlerResult = await handler({ rtmp_url: rtmp.url('rec30'), bucket, region: 'cn-hangzhou', dst: 'cam/rec', record: 'mp4', max_duration: 30 }, { requestId: 'rec-30', function: { timeout: 600 } });
      expect(raw.status, JSON.stringify(raw)).toBe('ok');
      const result = raw as SnapshotResult;
      expect(result.stop_reason).toBe('max_duration');
      expect(result.counts.uploaded).toBeGreaterThanOrEqual(28);
      const images = oss.listKeys(bucket, 'cam/rec/').filter((key) => /\/\d{14}\.jpg$/.test(key));
      expect(images).toHaveLength(result.counts.uploaded);
      for (const key of images) expect(await decodeImage(oss.getObject(bucket, key)!, 'jpg'), key).toMatchObject({ width: 640, height: 360, frames: 1 });

      expect(result.recordings, JSON.stringify(result.recordings)).toHaveLength(1);
      const [entry] = result.recordings!;
      expect(entry).toMatchObject({ format: 'mp4', status: 'stored', audio: true });
      expect(entry!.key).toMatch(/^cam\/rec\/\d{14}\.mp4$/);
      const mp4 = oss.getObject(bucket, entry!.key)!;
      expect(entry!.bytes).toBe(mp4.length);
      const decoded = await decodeMedia(mp4, 'mp4');
      expect(Math.abs(decoded.duration! - 30), JSON.stringify(decoded)).toBeLessThanOrEqual(2);
      expect(Math.abs(entry!.duration - decoded.duration!)).toBeLessThan(1);
      const video = decoded.streams.find((s) => s.type === 'video');
      expect(video).toMatchObject({ codec: 'h264' });
      expect(video!.frames).toBeGreaterThanOrEqual(28 * 25);
      const audio = decoded.streams.find((s) => s.type === 'audio');
      expect(audio).toMatchObject({ codec: 'aac' });
      // As much audio as video (AAC frames of 1024 samples at the test stream's 44.1 kHz), both
      // starting and ending together. (The looping publisher leaves a ~1 s gap in both at each loop.)
      expect(Math.abs((audio!.frames * 1024) / 44_100 - video!.frames / 25), JSON.stringify(decoded)).toBeLessThan(0.3);
      expect(Math.abs(audio!.duration! - video!.duration!), JSON.stringify(decoded)).toBeLessThan(0.3);
      expect(Math.abs(audio!.startTime! - video!.startTime!)).toBeLessThan(0.1);
      // The manifest lists it too.
      const manifest = JSON.parse(oss.getObject(bucket, 'cam/rec/manifest.json')!.toString());
      expect(manifest.recordings).toEqual(result.recordings);
      recorded = { result, mp4 };
    } finally {
      await publisher.stop();
    }
  }, 90_000);

  it('"flv" stores the tags as they came, audio too; an OSS outage mid-recording is held and caught up', async () => {
    const publisher = await liveStream('recflv');
    try {
      const handler = createSnapshotHandler({
        env: { OSS_ENDPOINT: oss.endpoint, ALIBABA_CLOUD_ACCESS_KEY_ID: credentials.accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: credentials.accessKeySecret, MEDIA_TMP_DIR: join(root, 'work'), LOG_LEVEL: 'error' },
      });
      const outage = setTimeout(() => oss.setOutage(true), 5_000);
      const recovery = setTimeout(() => oss.setOutage(false), 11_000);
      const raw = await handler({ rtmp_url: rtmp.url('recflv'), bucket, region: 'cn-hangzhou', dst: 'cam/flv', record: 'flv', max_duration: 20 }, { requestId: 'rec-flv', function: { timeout: 600 } });
      clearTimeout(outage);
      clearTimeout(recovery);
      oss.setOutage(false);
      const result = raw as SnapshotResult;
      expect(result.recordings, JSON.stringify(raw)).toHaveLength(1);
      const [entry] = result.recordings!;
      expect(entry).toMatchObject({ format: 'flv', status: 'stored', audio: true });
      const flv = oss.getObject(bucket, entry!.key)!;
      expect(entry!.bytes).toBe(flv.length);
      const decoded = await decodeMedia(flv, 'flv');
      // The whole 20 s, the 6 s outage included: held in memory, appended once OSS was back.
      expect(Math.abs(decoded.duration! - 20), JSON.stringify(decoded)).toBeLessThanOrEqual(2);
      expect(decoded.streams.find((s) => s.type === 'video')).toMatchObject({ codec: 'h264' });
      expect(decoded.streams.find((s) => s.type === 'video')!.frames).toBeGreaterThanOrEqual(18 * 25);
      expect(decoded.streams.find((s) => s.type === 'audio')).toMatchObject({ codec: 'aac' });
    } finally {
      oss.setOutage(false);
      await publisher.stop();
    }
  }, 90_000);

  it('after a SIGKILL at about 20 s, the MP4 in the bucket plays at least 14 s', async () => {
    const publisher = await liveStream('reckill');
    const workRoot = join(root, 'kill-work');
    const bucketRoot = join(root, 'kill-bucket');
    const mp4Dir = join(bucketRoot, 'crash-bucket', 'cam');
    let host: ChildProcess | undefined;
    try {
      host = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/snapshot-host.ts', rtmp.url('reckill'), workRoot, bucketRoot, 'cam', JSON.stringify({ record: 'mp4' })], { stdio: ['ignore', 'ignore', 'inherit'] });
      const hostExited = once(host, 'exit');
      await new Promise((resolve) => setTimeout(resolve, 20_000));
      host.kill('SIGKILL');
      await hostExited;
      const mp4s = existsSync(mp4Dir) ? (await readdir(mp4Dir)).filter((name) => name.endsWith('.mp4')) : [];
      expect(mp4s).toHaveLength(1);
      const afterKill = await decodeMedia(await readFile(join(mp4Dir, mp4s[0]!)), 'mp4');
      expect(afterKill.duration, JSON.stringify(afterKill)).toBeGreaterThanOrEqual(14);
      expect(afterKill.streams.find((s) => s.type === 'video')!.frames).toBeGreaterThanOrEqual(14 * 25);
    } finally {
      host?.kill('SIGKILL');
      await publisher.stop();
    }
  }, 90_000);
});

describeWithBrowser('the recording in Chromium', (browser) => {
  let server: StaticServer;
  let served: string;
  beforeAll(async () => {
    served = await mkdtemp(join(tmpdir(), 'served-stream-recording-'));
    server = await startStaticServer(served);
  });
  afterAll(() => server?.close());

  it('plays and seeks the 30 s MP4', async () => {
    expect(recorded, 'the 30 s recording test ran first').toBeDefined();
    await writeFile(join(served, 'stream.mp4'), recorded!.mp4);
    const check = await browser().checkMedia(server.url('stream.mp4'), { kind: 'video', seekTo: 20 });
    expect(check.error, JSON.stringify(check)).toBeNull();
    expect(check.duration).toBeGreaterThan(28);
    expect(check.width).toBe(640);
    expect(check.play?.advanced).toBe(true);
    expect(check.seek?.seeked).toBe(true);
    expect(Math.abs(check.seek!.currentTime - 20)).toBeLessThan(1);
    expect(check.seek?.frame?.presented).toBe(true);
  });
});
