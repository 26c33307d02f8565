import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { FlvTagReader, videoTagInfo, type FlvTag } from '../../shared/media/flv';
import { accessUnitInfo } from '../../shared/media/h264-nal';
import { imagerTime, snapshotFileName } from '../../shared/snapshot/args';
import { Imager } from '../../shared/snapshot/imager';
import { decodeImage, makeTestStream } from '../support/media-tools';

let tags: FlvTag[];

beforeAll(async () => {
  // x264's default 3 B-frames: the SPS declares a reorder depth of 2.
  const stream = await makeTestStream({ width: 320, height: 180, fps: 25, gopSeconds: 1, seconds: 8, audio: false, bframes: 3 });
  tags = new FlvTagReader().push(await readFile(stream));
});

const BASE_MS = -10_000;

function newImager(workDir: string, maxBacklogBytes = 4 * 1024 * 1024): Imager {
  return new Imager({
    ffmpegPath: resolveFfmpegPath(),
    plan: { format: 'jpg', picture: { chromaFormat: 1, bitDepth: 8, fullRange: false }, workDir, run: 0 },
    baseMs: BASE_MS,
    sequenceHeader: tags.find((tag) => videoTagInfo(tag)?.avcPacketType === 0)!,
    maxBacklogBytes,
  });
}

const pictures = () =>
  tags
    .map((tag) => ({ tag, info: videoTagInfo(tag)! }))
    .filter(({ info }) => info?.avcPacketType === 1)
    .map(({ tag, info }) => ({ tag, info, times: { dtsMs: tag.dts, ptsMs: info.pts }, unit: accessUnitInfo(tag.data.subarray(5), 4) }));

describe('Imager', () => {
  it('writes the image of each keyframe before the next one is fed, even with B-frames in the source', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'imager-'));
    const imager = newImager(workDir);
    const keyframes = pictures().filter(({ info }) => info.keyframe);
    expect(keyframes.length).toBeGreaterThanOrEqual(7);
    for (const { tag, times } of keyframes) {
      expect(imager.write(tag, times, true)).toBe(true);
      // A decoder that holds pictures back for reordering would never write this one until more arrive.
      await expect.poll(() => existsSync(join(workDir, snapshotFileName(0, 'jpg', imagerTime(times.ptsMs, BASE_MS, true)))), { timeout: 5_000, interval: 20 }).toBe(true);
    }
    expect((await imager.finish()).code).toBe(0);
    const written = await readdir(workDir);
    expect(written).toHaveLength(keyframes.length);
    for (const name of written) expect(await decodeImage(await readFile(join(workDir, name)), 'jpg'), name).toEqual({ codec: 'mjpeg', width: 320, height: 180, frames: 1 });
  });

  it('turns only the chosen pictures into images, decoding the reference pictures they need', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'imager-gop-'));
    const imager = newImager(workDir);
    // Every reference picture fed; one chosen every 0.4 s, keyframe or not; non-references left out.
    const fed = pictures().filter(({ unit }) => unit.reference);
    const chosen = new Set<number>();
    for (const { tag, times, unit } of fed) {
      const choose = unit.sliceType !== 'B' && Math.floor(times.ptsMs / 400) > Math.floor((Math.max(...chosen, -1_000)) / 400);
      if (choose) chosen.add(times.ptsMs);
      expect(imager.write(tag, times, choose)).toBe(true);
    }
    expect((await imager.finish()).code).toBe(0);
    const names = (await readdir(workDir)).sort();
    expect(names.map((name) => Number(/^r0-(\d+)\.jpg$/.exec(name)![1])).sort((a, b) => a - b)).toEqual([...chosen].map((pts) => imagerTime(pts, BASE_MS, true)).sort((a, b) => a - b));
    for (const name of names) expect((await decodeImage(await readFile(join(workDir, name)), 'jpg')).frames).toBe(1);
  });

  it('sheds what it cannot take instead of queueing without limit', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'imager-shed-'));
    const imager = newImager(workDir, 4 * 1024);
    // Written all at once, far faster than ffmpeg reads: most are refused.
    const all = pictures().filter(({ unit }) => unit.reference);
    const accepted = all.filter(({ tag, times }) => imager.write(tag, times, false)).length;
    expect(accepted).toBeLessThan(all.length);
    expect(accepted).toBeGreaterThan(0);
    await imager.finish();
  });
});
