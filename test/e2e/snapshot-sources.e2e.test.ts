/**
 * Source URLs as customers send them: host names (which the shipped static ffmpeg cannot
 * resolve: Node resolves and connects, ffmpeg only ever reads loopback), HTTP-FLV, HLS, and the
 * failures a name or a port can give, each reported at once with what went wrong.
 */
import { spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnapshotHandler } from '../../functions/fc-snapshot';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import type { SnapshotResult } from '../../shared/snapshot/job';
import { createLocalStore } from '../../shared/storage/local';
import { decodeImage, decodeMedia, makeTestStream } from '../support/media-tools';
import { publish, waitForPublishing } from '../support/publisher';
import { freePort, startNodeMediaServer } from '../support/rtmp-server';

let server: Awaited<ReturnType<typeof startNodeMediaServer>>;
let stream: string;
let root: string;

beforeAll(async () => {
  [server, stream, root] = await Promise.all([
    startNodeMediaServer({ httpFlv: true }),
    makeTestStream({ width: 320, height: 180, fps: 25, gopSeconds: 1, seconds: 10, audio: true }),
    mkdtemp(join(tmpdir(), 'snapshot-sources-')),
  ]);
});
afterAll(() => server?.stop());

async function snapshot(rtmpUrl: string, dst: string, over: Record<string, unknown> = {}): Promise<SnapshotResult> {
  const bucketRoot = join(root, 'bucket');
  const handler = createSnapshotHandler({
    // The shipped ffmpeg (no FFMPEG_PATH): the one that crashed on every host name.
    env: { MEDIA_TMP_DIR: join(root, 'tmp'), LOG_LEVEL: 'error' },
    createStore: (target) => createLocalStore({ root: bucketRoot, bucket: target.bucket }),
  });
  return (await handler({ rtmp_url: rtmpUrl, bucket: 'sources', region: 'cn-hangzhou', dst, ...over }, { requestId: dst })) as SnapshotResult;
}

/** With `record`: one MP4 that ffprobe decodes, with the source's H.264 and AAC. */
async function expectRecording(result: SnapshotResult, dst: string): Promise<void> {
  expect(result.recordings, JSON.stringify(result)).toHaveLength(1);
  const [entry] = result.recordings!;
  expect(entry).toMatchObject({ status: 'stored', audio: true });
  const decoded = await decodeMedia(await readFile(join(root, 'bucket', 'sources', entry!.key)), 'mp4');
  expect(decoded.streams.map((s) => `${s.type}:${s.codec}`).sort(), `${dst}: ${JSON.stringify(decoded)}`).toEqual(['audio:aac', 'video:h264']);
  expect(decoded.streams.every((s) => s.frames > 0)).toBe(true);
}

/** Every stored image decodes to one 320-wide picture. */
async function expectStoredImages(dst: string, count: number): Promise<void> {
  const dir = join(root, 'bucket', 'sources', dst);
  const images = (await readdir(dir)).filter((name) => /^\d{14}\.jpg$/.test(name));
  expect(images).toHaveLength(count);
  for (const name of images) expect(await decodeImage(await readFile(join(dir, name)), 'jpg'), name).toMatchObject({ frames: 1, width: 320 });
}

describe('snapshot sources', () => {
  it('pulls rtmp://localhost/… and http://localhost/….flv with the shipped ffmpeg', async () => {
    expect(resolveFfmpegPath()).toContain('@ffmpeg-installer');
    const publisher = publish(stream, server.url('names'), { loop: true });
    try {
      await waitForPublishing(server, 'names', 15_000);
      const rtmp = await snapshot(server.url('names').replace('127.0.0.1', 'localhost'), 'rtmp-name', { max_snapshots: 3 });
      expect(rtmp).toMatchObject({ status: 'ok', reception: 'node-rtmp', counts: { uploaded: 3 } });
      await expectStoredImages('rtmp-name', 3);

      // Recording the stream too: the HTTP-FLV client hands over the audio as well.
      const flv = await snapshot(server.httpFlvUrl('names').replace('127.0.0.1', 'localhost'), 'flv-name', { max_snapshots: 3, record: 'mp4' });
      expect(flv).toMatchObject({ status: 'ok', reception: 'node-http-flv', counts: { uploaded: 3 } });
      await expectStoredImages('flv-name', 3);
      await expectRecording(flv, 'flv-name');
    } finally {
      await publisher.stop();
    }
  });

  it('pulls an HLS playlist by host name through the loopback proxy', async () => {
    const hlsDir = await mkdtemp(join(tmpdir(), 'hls-'));
    const made = spawn(resolveFfmpegPath(), ['-hide_banner', '-loglevel', 'error', '-i', stream, '-c', 'copy', '-f', 'hls', '-hls_time', '1', '-hls_list_size', '0', '-hls_playlist_type', 'vod', join(hlsDir, 'index.m3u8')]);
    expect(await new Promise((resolve) => made.on('exit', resolve))).toBe(0);
    // The same with MP3 audio, which FLV relays but MP4 recording does not take as it is.
    await mkdir(join(hlsDir, 'mp3'));
    const mp3 = spawn(resolveFfmpegPath(), ['-hide_banner', '-loglevel', 'error', '-i', stream, '-c:v', 'copy', '-c:a', 'libmp3lame', '-f', 'hls', '-hls_time', '1', '-hls_list_size', '0', '-hls_playlist_type', 'vod', join(hlsDir, 'mp3', 'index.m3u8')]);
    expect(await new Promise((resolve) => mp3.on('exit', resolve))).toBe(0);
    const requested: string[] = [];
    const files = createServer((request, response) => {
      requested.push(request.url ?? '');
      const file = join(hlsDir, normalize(decodeURIComponent((request.url ?? '/').replace(/^\/hls\//, '/'))));
      if (!file.startsWith(hlsDir) || !existsSync(file)) return void response.writeHead(404).end();
      response.writeHead(200, { 'content-type': file.endsWith('.m3u8') ? 'application/vnd.apple.mpegurl' : 'video/mp2t' });
      createReadStream(file).pipe(response);
    });
    const port = await listen(files);
    try {
      const result = await snapshot(`http://localhost:${port}/hls/index.m3u8`, 'hls-name', { max_snapshots: 3, record: 'mp4' });
      expect(result).toMatchObject({ status: 'ok', reception: 'ffmpeg', counts: { uploaded: 3 } });
      await expectStoredImages('hls-name', 3);
      // ffmpeg's pull relays the audio too when the stream is recorded.
      await expectRecording(result, 'hls-name');
      // The segments came through the proxy from the customer's server.
      expect(requested.some((url) => url.endsWith('.ts'))).toBe(true);

      // Audio that cannot be relayed as AAC: the snapshots and the video are recorded all the same.
      const withMp3 = await snapshot(`http://localhost:${port}/hls/mp3/index.m3u8`, 'hls-mp3', { max_snapshots: 3, record: 'mp4' });
      expect(withMp3).toMatchObject({ status: 'ok', counts: { uploaded: 3 } });
      await expectStoredImages('hls-mp3', 3);
      expect(withMp3.recordings?.[0]).toMatchObject({ status: 'stored', audio: false });
      const video = await decodeMedia(await readFile(join(root, 'bucket', 'sources', withMp3.recordings![0]!.key)), 'mp4');
      expect(video.streams.map((s) => `${s.type}:${s.codec}`)).toEqual(['video:h264']);
    } finally {
      files.close();
    }
  });

  it('reports a name that does not resolve, and a port nobody listens on, without waiting for the timeout', async () => {
    const unresolvable = await snapshot('rtmp://no-such-host.invalid/live/x', 'unresolvable', { connect_timeout: 20 });
    expect(unresolvable).toMatchObject({ status: 'error', stop_reason: 'error' });
    expect(unresolvable.error?.message).toMatch(/host name could not be resolved/);
    expect(Date.parse(unresolvable.ended_at) - Date.parse(unresolvable.started_at)).toBeLessThan(20_000);

    const closedPort = await freePort();
    const refused = await snapshot(`rtmp://localhost:${closedPort}/live/x`, 'refused', { connect_timeout: 20 });
    expect(refused).toMatchObject({ status: 'error', stop_reason: 'error' });
    expect(refused.error?.message).toMatch(/connection refused/);
    expect(Date.parse(refused.ended_at) - Date.parse(refused.started_at)).toBeLessThan(20_000);
  });
});

async function listen(httpServer: Server): Promise<number> {
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const address = httpServer.address();
  if (typeof address !== 'object' || !address) throw new Error('not listening');
  return address.port;
}
