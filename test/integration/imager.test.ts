import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { FlvTagReader, videoTagInfo, type FlvTag } from '../../shared/media/flv';
import { snapshotFileName } from '../../shared/snapshot/args';
import { Imager } from '../../shared/snapshot/imager';
import { decodeImage, makeTestStream } from '../support/media-tools';

let tags: FlvTag[];
let fileHeader: Buffer;

beforeAll(async () => {
  // x264's default 3 B-frames: the SPS declares a reorder depth of 2.
  const stream = await makeTestStream({ width: 320, height: 180, fps: 25, gopSeconds: 1, seconds: 8, audio: false, bframes: 3 });
  const reader = new FlvTagReader();
  tags = reader.push(await readFile(stream));
  fileHeader = reader.fileHeader!;
});

function newImager(mode: 'keyframes' | 'all', workDir: string): Imager {
  const sequenceHeader = tags.find((tag) => videoTagInfo(tag)?.avcPacketType === 0)!;
  return new Imager({
    ffmpegPath: resolveFfmpegPath(),
    plan: { mode, intervalSec: 1, anchorSec: 0, format: 'jpg', workDir, run: 0 },
    fileHeader,
    sequenceHeader,
    maxBacklogBytes: 4 * 1024 * 1024,
  });
}

const pictures = () => tags.map((tag) => ({ tag, info: videoTagInfo(tag) })).filter(({ info }) => info?.avcPacketType === 1);

describe('Imager', () => {
  it('writes the image of each keyframe before the next one is fed, even with B-frames in the source', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'imager-'));
    const imager = newImager('keyframes', workDir);
    const keyframes = pictures().filter(({ info }) => info!.keyframe);
    expect(keyframes.length).toBeGreaterThanOrEqual(7);
    for (const { tag, info } of keyframes) {
      expect(imager.write(tag)).toBe(true);
      // A decoder that holds pictures back for reordering would never write this one until more arrive.
      await expect.poll(() => existsSync(join(workDir, snapshotFileName(0, 'jpg', info!.pts))), { timeout: 5_000, interval: 20 }).toBe(true);
    }
    expect((await imager.finish()).code).toBe(0);
    const written = await readdir(workDir);
    expect(written).toHaveLength(keyframes.length);
    for (const name of written) expect(await decodeImage(await readFile(join(workDir, name)), 'jpg'), name).toEqual({ codec: 'mjpeg', width: 320, height: 180, frames: 1 });
  });

  it('decoding every frame, writes the first frame of each slot, and everything it held when its input ends', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'imager-all-'));
    const imager = newImager('all', workDir);
    for (const { tag } of pictures()) expect(imager.write(tag)).toBe(true);
    expect((await imager.finish()).code).toBe(0);
    const times = (await readdir(workDir)).map((name) => Number(/^r0-(\d+)\.jpg$/.exec(name)![1])).sort((a, b) => a - b);
    // 8 s of stream: slot 0 from the first frame (pts 80: the B-frame delay), then one per second.
    expect(times).toEqual([80, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000].slice(0, times.length));
    expect(times.length).toBeGreaterThanOrEqual(8);
    for (const name of await readdir(workDir)) expect((await decodeImage(await readFile(join(workDir, name)), 'jpg')).frames).toBe(1);
  });

  it('sheds what it cannot take instead of queueing without limit', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'imager-shed-'));
    const sequenceHeader = tags.find((tag) => videoTagInfo(tag)?.avcPacketType === 0)!;
    const imager = new Imager({
      ffmpegPath: resolveFfmpegPath(),
      plan: { mode: 'all', intervalSec: 1, anchorSec: 0, format: 'jpg', workDir, run: 0 },
      fileHeader,
      sequenceHeader,
      maxBacklogBytes: 64 * 1024,
    });
    // Written all at once, far faster than ffmpeg reads: most are refused.
    const accepted = pictures().filter(({ tag }) => imager.write(tag)).length;
    expect(accepted).toBeLessThan(pictures().length);
    expect(accepted).toBeGreaterThan(0);
    await imager.finish();
  });
});
