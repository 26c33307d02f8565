/**
 * Streams as customers' encoders send them, through both RTMP servers: GOPs of 1–10 s, closed and
 * open, intra refresh, B-frames (pyramid) and none, 30 and 60 fps, 10-bit and 4:4:4, BT.709, a
 * publisher that drops and returns, and one that republishes at another size. Every stored image
 * is read back to the frame it shows and compared with that frame as the test pattern drew it.
 */
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnapshotHandler } from '../../functions/fc-snapshot';
import type { SnapshotResult } from '../../shared/snapshot/job';
import { createLocalStore } from '../../shared/storage/local';
import { decodeImage } from '../support/media-tools';
import { publish } from '../support/publisher';
import { nginxAvailable, NGINX_SKIP_MESSAGE, startNginxRtmp, startNodeMediaServer, type RtmpServer } from '../support/rtmp-server';
import { checkSnapshots, makeStampedStream, type StampedStreamOptions } from '../support/stamped-stream';

/** A stored image must show its frame this closely (a wrong frame scores < 20 dB, a green field < 10). */
const MIN_PSNR_DB = 30;
/** Of the slots from the first image to the stream's end, at least this share gets one. */
const MIN_SLOT_COVERAGE = 0.9;

interface Segment {
  stream: StampedStreamOptions;
  /** Pause before this segment is published (the publisher dropped). */
  pauseBeforeSec?: number;
}

interface GopCase {
  name: string;
  server: 'nginx-rtmp' | 'node-media-server';
  interval: number;
  segments: Segment[];
  /**
   * At least this many images (the figure for the 40 s cases). Those start the function
   * before the publisher: nginx-rtmp starts a player at the next keyframe, so a job that joins a
   * 10 s GOP stream mid-GOP cannot have pictures of the seconds before it.
   */
  minImages?: number;
}

const stream = (over: Partial<StampedStreamOptions>): StampedStreamOptions => ({ width: 640, height: 360, fps: 30, seconds: 40, gopSeconds: 2, ...over });

const cases: GopCase[] = [
  // The original sample's own setup: nginx-rtmp, x264 High with B-frames, a 2 s GOP, interval 1.
  { name: '2 s GOP with B-frames', server: 'nginx-rtmp', interval: 1, segments: [{ stream: stream({}) }], minImages: 34 },
  { name: '2 s open GOP', server: 'nginx-rtmp', interval: 1, segments: [{ stream: stream({ openGop: true }) }], minImages: 34 },
  { name: '10 s GOP', server: 'nginx-rtmp', interval: 1, segments: [{ stream: stream({ gopSeconds: 10 }) }], minImages: 34 },
  { name: '1 s open GOP', server: 'nginx-rtmp', interval: 1, segments: [{ stream: stream({ gopSeconds: 1, openGop: true }) }], minImages: 34 },
  { name: 'High 10 (10-bit 4:2:0)', server: 'nginx-rtmp', interval: 1, segments: [{ stream: stream({ gopSeconds: 1, seconds: 16, pixFmt: 'yuv420p10le' }) }] },
  { name: 'High 4:4:4 Predictive, 10-bit', server: 'nginx-rtmp', interval: 1, segments: [{ stream: stream({ gopSeconds: 1, seconds: 16, pixFmt: 'yuv444p10le' }) }] },
  { name: 'BT.709', server: 'node-media-server', interval: 1, segments: [{ stream: stream({ gopSeconds: 1, seconds: 16, bt709: true }) }] },
  { name: '4 s GOP, 60 fps, pyramid B-frames', server: 'node-media-server', interval: 1, segments: [{ stream: stream({ fps: 60, gopSeconds: 4, seconds: 16 }) }] },
  { name: 'intra refresh, no B-frames', server: 'node-media-server', interval: 1, segments: [{ stream: stream({ gopSeconds: 2, seconds: 16, intraRefresh: true, bframes: 0 }) }] },
  { name: '1 s GOP at interval 0.5', server: 'node-media-server', interval: 0.5, segments: [{ stream: stream({ gopSeconds: 1, seconds: 16, bframes: 0 }) }] },
  { name: '1 s GOP at interval 2 (keyframes only)', server: 'node-media-server', interval: 2, segments: [{ stream: stream({ gopSeconds: 1, seconds: 16 }) }] },
  {
    name: 'a publisher that drops for 3 s and returns',
    server: 'nginx-rtmp',
    interval: 1,
    segments: [{ stream: stream({ seconds: 12 }) }, { stream: stream({ seconds: 12 }), pauseBeforeSec: 3 }],
  },
  {
    name: 'a publisher that republishes at another size',
    server: 'nginx-rtmp',
    interval: 1,
    segments: [{ stream: stream({ seconds: 12, gopSeconds: 1 }) }, { stream: stream({ seconds: 12, gopSeconds: 1, width: 480, height: 270 }), pauseBeforeSec: 2 }],
  },
];

const servers = new Map<GopCase['server'], RtmpServer>();
let streamNumber = 0;

beforeAll(async () => {
  const nginx = nginxAvailable() ? await startNginxRtmp() : null;
  if (nginx) servers.set('nginx-rtmp', nginx);
  servers.set('node-media-server', await startNodeMediaServer());
  // Encoded once (and cached), before any stream runs: encoding beside live streams would starve them.
  for (const testCase of cases) for (const segment of testCase.segments) await makeStampedStream(segment.stream);
}, 600_000);

afterAll(async () => {
  await Promise.all([...servers.values()].map((server) => server.stop()));
});

async function runCase(testCase: GopCase): Promise<{ result: SnapshotResult; images: Array<{ key: string; bytes: Buffer }> }> {
  const server = servers.get(testCase.server)!;
  const name = `gop${++streamNumber}`;
  const root = await mkdtemp(join(tmpdir(), 'gop-bucket-'));
  const handler = createSnapshotHandler({
    env: { MEDIA_TMP_DIR: await mkdtemp(join(tmpdir(), 'gop-work-')), LOG_LEVEL: 'warn' },
    createStore: (target) => createLocalStore({ root, bucket: target.bucket }),
  });
  let startPublishing!: () => void;
  const started = new Promise<void>((resolve) => (startPublishing = resolve));
  const publishing = (async () => {
    await started;
    for (const segment of testCase.segments) {
      if (segment.pauseBeforeSec) await new Promise((resolve) => setTimeout(resolve, segment.pauseBeforeSec! * 1000));
      const publisher = publish(await makeStampedStream(segment.stream), server.url(name));
      await publisher.exited;
    }
  })();
  // By host name: the stream is received by Node, never by a resolver inside the static ffmpeg.
  const url = server.url(name).replace('127.0.0.1', 'localhost');
  const invoke = () => handler({ rtmp_url: url, bucket: 'gops', region: 'cn-hangzhou', interval: testCase.interval, idle_timeout: 8 }, { requestId: name });
  let result: SnapshotResult;
  if (testCase.minImages !== undefined) {
    const running = invoke();
    await new Promise((resolve) => setTimeout(resolve, 500));
    void startPublishing();
    result = (await running) as SnapshotResult;
  } else {
    void startPublishing();
    // Joins a stream that is already live, mid-GOP.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    result = (await invoke()) as SnapshotResult;
  }
  await publishing;
  const dir = join(root, 'gops');
  const keys = (await readdir(dir)).filter((key) => /^\d{14,17}\.jpg$/.test(key)).sort();
  return { result, images: await Promise.all(keys.map(async (key) => ({ key, bytes: await readFile(join(dir, key)) }))) };
}

function describeCases(server: GopCase['server']) {
  const selected = cases.filter((testCase) => testCase.server === server);
  describe.concurrent(`snapshots of every GOP shape (${server})`, () => {
    for (const testCase of selected) {
      it(testCase.name, async () => {
        const { result, images } = await runCase(testCase);
        expect(result.status, JSON.stringify(result)).toBe('ok');
        expect(result.stop_reason).toBe('idle');
        expect(result.reception).toBe('node-rtmp');
        expect(result.counts.uploaded).toBe(images.length);
        // Each image read back: its size tells its segment's encoding, its stamp the frame.
        const checked = [];
        for (const image of images) {
          const decoded = await decodeImage(image.bytes, 'jpg');
          expect(decoded.frames, image.key).toBe(1);
          const segment = testCase.segments.find(({ stream }) => stream.width === decoded.width && stream.height === decoded.height);
          expect(segment, `${image.key} is ${decoded.width}x${decoded.height}`).toBeDefined();
          const [check] = await checkSnapshots([image], 'jpg', segment!.stream);
          expect(check!.psnr, `${image.key} (frame ${check!.frame})`).toBeGreaterThanOrEqual(MIN_PSNR_DB);
          checked.push({ ...check!, segment: segment! });
        }
        // Keys follow time; a segment ends where the frame numbers start over.
        const runs: Array<typeof checked> = [];
        for (const image of checked) {
          const run = runs.at(-1);
          if (run && image.frame > run.at(-1)!.frame) run.push(image);
          else runs.push([image]);
        }
        expect(runs.map((run) => run[0]!.segment.stream.width), 'one run of images per segment, in order').toEqual(testCase.segments.map(({ stream }) => stream.width));
        let expectedSlots = 0;
        for (const [index, run] of runs.entries()) {
          const { fps, seconds } = run[0]!.segment.stream;
          const lastFrame = Math.round(seconds * fps) - 1;
          // The job ran to the segment's end: its last image is from its last slot or two.
          expect(run.at(-1)!.frame, `last image of segment ${index}`).toBeGreaterThanOrEqual(lastFrame - fps * (testCase.interval + 1));
          expectedSlots += Math.floor((lastFrame - run[0]!.frame) / fps / testCase.interval) + 1;
        }
        expect(images.length, `images for ${expectedSlots} slots`).toBeGreaterThanOrEqual(Math.floor(expectedSlots * MIN_SLOT_COVERAGE));
        if (testCase.minImages !== undefined) expect(images.length).toBeGreaterThanOrEqual(testCase.minImages);
      });
    }
  });
}

describeCases('node-media-server');
describe.skipIf(!nginxAvailable())('nginx-rtmp', () => describeCases('nginx-rtmp'));
if (!nginxAvailable()) describe(NGINX_SKIP_MESSAGE, () => it.skip('nginx-rtmp cases', () => {}));
