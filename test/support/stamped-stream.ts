import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runTracked } from './child-processes';
import { ffmpegPath } from './media-tools';

/**
 * Test streams that say which frame they are: testsrc2 with each frame's number drawn as 16 black
 * and white squares along the top. A stored snapshot is read back to its frame number, and
 * compared with that very frame as the test pattern drew it, before any encoder touched it: the
 * right picture, in the right colours, or not.
 */

export interface StampedStreamOptions {
  width: number;
  height: number;
  fps: number;
  seconds: number;
  gopSeconds: number;
  /** B-frames between references (x264 veryfast: 3, pyramid); 0: none. */
  bframes?: number;
  openGop?: boolean;
  /** Periodic intra refresh instead of keyframes. */
  intraRefresh?: boolean;
  pixFmt?: 'yuv420p' | 'yuv420p10le' | 'yuv444p' | 'yuv444p10le';
  /** Encode with the BT.709 matrix and say so in the stream. */
  bt709?: boolean;
  audio?: boolean;
}

const STAMP_BITS = 16;
const repoRoot = path.resolve(__dirname, '..', '..');
const cacheDir = path.join(repoRoot, '.cache', 'test-streams');
const pending = new Map<string, Promise<string>>();

function squareSize(height: number): number {
  return Math.max(8, Math.floor(height / 24));
}

/** drawbox filters that stamp each frame's number `n` in binary along the top-left edge. */
function stampFilters(height: number): string[] {
  const size = squareSize(height);
  const filters = [`drawbox=x=0:y=0:w=${STAMP_BITS * size}:h=${size}:color=black:t=fill`];
  for (let bit = 0; bit < STAMP_BITS; bit++) {
    filters.push(`drawbox=x=${bit * size}:y=0:w=${size}:h=${size}:color=white:t=fill:enable='eq(mod(floor(n/${2 ** bit}),2),1)'`);
  }
  return filters;
}

function source(options: Pick<StampedStreamOptions, 'width' | 'height' | 'fps'>): string[] {
  return ['-f', 'lavfi', '-i', `testsrc2=size=${options.width}x${options.height}:rate=${options.fps}`];
}

export function stampedStreamName(options: StampedStreamOptions): string {
  const parts = [
    `stamped-${options.width}x${options.height}-${options.fps}fps-${options.seconds}s-gop${options.gopSeconds}`,
    `b${options.bframes ?? 'def'}`,
    options.openGop ? 'open' : '',
    options.intraRefresh ? 'irefresh' : '',
    options.pixFmt ?? 'yuv420p',
    options.bt709 ? 'bt709' : '',
    options.audio ? 'aac' : '',
  ];
  return `${parts.filter(Boolean).join('-')}.flv`;
}

/** An FLV of the stamped pattern, encoded as asked, cached by its parameters. */
export function makeStampedStream(options: StampedStreamOptions): Promise<string> {
  const file = path.join(cacheDir, stampedStreamName(options));
  let made = pending.get(file);
  if (!made) {
    made = encode(file, options);
    pending.set(file, made);
    made.catch(() => pending.delete(file));
  }
  return made;
}

async function encode(file: string, options: StampedStreamOptions): Promise<string> {
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(cacheDir, { recursive: true });
  const temporary = `${file}.${process.pid}.${Date.now()}.tmp`;
  const gop = Math.round(options.fps * options.gopSeconds);
  const x264 = [
    ...(options.openGop ? ['open-gop=1'] : []),
    ...(options.intraRefresh ? ['intra-refresh=1'] : []),
    `keyint=${gop}`, ...(options.intraRefresh ? [] : [`min-keyint=${gop}`]), 'scenecut=0',
  ];
  const filters = [...stampFilters(options.height), ...(options.bt709 ? ['scale=out_color_matrix=bt709:out_range=tv'] : [])];
  const args = [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-y',
    ...source(options),
    ...(options.audio ? ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'] : []),
    '-t', String(options.seconds),
    '-vf', filters.join(','),
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', options.pixFmt ?? 'yuv420p',
    ...(options.bframes !== undefined ? ['-bf', String(options.bframes)] : []),
    '-x264-params', x264.join(':'),
    ...(options.bt709 ? ['-colorspace', 'bt709', '-color_primaries', 'bt709', '-color_trc', 'bt709'] : []),
    ...(options.audio ? ['-c:a', 'aac'] : []),
    '-f', 'flv', temporary,
  ];
  const result = await runTracked(ffmpegPath, args, 300_000);
  if (result.code !== 0) {
    fs.rmSync(temporary, { force: true });
    throw new Error(`ffmpeg could not make ${path.basename(file)} (exit ${result.code}): ${result.stderr.trim()}`);
  }
  fs.renameSync(temporary, file);
  return file;
}

/** An image decoded to RGB24 at the given size (ffmpeg here is only the reader of what was stored). */
export async function decodeToRgb(image: Buffer, extension: string, width: number, height: number): Promise<Buffer> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'stamp-'));
  try {
    const input = path.join(dir, `image.${extension}`);
    await fs.promises.writeFile(input, image);
    const output = path.join(dir, 'image.rgb');
    const result = await runTracked(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-i', input, '-vf', `scale=${width}:${height}:flags=bicubic,format=rgb24`, '-f', 'rawvideo', output], 60_000);
    if (result.code !== 0) throw new Error(`could not decode the image: ${result.stderr.trim()}`);
    return await fs.promises.readFile(output);
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** The frame number stamped on an RGB24 picture of the stream's size. */
export function readStamp(rgb: Buffer, width: number, height: number): number {
  const size = squareSize(height);
  let frame = 0;
  for (let bit = 0; bit < STAMP_BITS; bit++) {
    const x = bit * size + Math.floor(size / 2);
    const y = Math.floor(size / 2);
    const offset = (y * width + x) * 3;
    const luma = (rgb[offset]! + rgb[offset + 1]! + rgb[offset + 2]!) / 3;
    if (luma > 128) frame += 2 ** bit;
  }
  return frame;
}

/** The stream's own frames, as the pattern drew them (RGB24), by frame number. */
export async function referenceFrames(options: Pick<StampedStreamOptions, 'width' | 'height' | 'fps'>, frames: number[]): Promise<Map<number, Buffer>> {
  const wanted = [...new Set(frames)].sort((a, b) => a - b);
  const frameBytes = options.width * options.height * 3;
  const out = new Map<number, Buffer>();
  // A few hundred frames per run keeps the select expression short.
  for (let start = 0; start < wanted.length; start += 200) {
    const batch = wanted.slice(start, start + 200);
    const select = batch.map((n) => `eq(n,${n})`).join('+');
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'reference-'));
    try {
      const output = path.join(dir, 'frames.rgb');
      const result = await runTracked(
        ffmpegPath,
        ['-hide_banner', '-loglevel', 'error', ...source(options), '-vf', [...stampFilters(options.height), `select='${select}'`, 'format=rgb24'].join(','), '-vsync', '0', '-frames:v', String(batch.length), '-f', 'rawvideo', output],
        120_000,
      );
      if (result.code !== 0) throw new Error(`could not draw reference frames: ${result.stderr.trim()}`);
      const bytes = await fs.promises.readFile(output);
      batch.forEach((n, i) => out.set(n, bytes.subarray(i * frameBytes, (i + 1) * frameBytes)));
    } finally {
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  }
  return out;
}

/** Peak signal-to-noise ratio of two same-sized 8-bit pictures, in dB (Infinity when equal). */
export function psnr(a: Buffer, b: Buffer): number {
  if (a.length !== b.length) throw new Error(`pictures differ in size: ${a.length} vs ${b.length} bytes`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    sum += d * d;
  }
  const mse = sum / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

export interface CheckedSnapshot {
  key: string;
  frame: number;
  psnr: number;
}

/**
 * Every stored image, read back: its frame number and how close it is to that frame as drawn. A
 * right picture in the right colours scores 30 dB and more; a wrong frame, wrong colours or a
 * green field score far less.
 */
export async function checkSnapshots(images: Array<{ key: string; bytes: Buffer }>, extension: string, stream: Pick<StampedStreamOptions, 'width' | 'height' | 'fps'>): Promise<CheckedSnapshot[]> {
  const decoded = await Promise.all(images.map(async ({ key, bytes }) => ({ key, rgb: await decodeToRgb(bytes, extension, stream.width, stream.height) })));
  const withFrames = decoded.map(({ key, rgb }) => ({ key, rgb, frame: readStamp(rgb, stream.width, stream.height) }));
  const references = await referenceFrames(stream, withFrames.map(({ frame }) => frame));
  return withFrames.map(({ key, rgb, frame }) => ({ key, frame, psnr: psnr(rgb, references.get(frame)!) }));
}
