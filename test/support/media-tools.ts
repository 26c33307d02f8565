import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import ffmpegInstaller from '@ffmpeg-installer/ffmpeg';
import ffprobeInstaller from '@ffprobe-installer/ffprobe';
import { runTracked } from './child-processes';

/** npm 11 may skip the installers' chmod postinstall, leaving the binaries without their run bit. */
function executable(binary: string): string {
  const mode = fs.statSync(binary).mode;
  if ((mode & 0o100) === 0) fs.chmodSync(binary, mode | 0o100);
  return binary;
}

/** A 4.1-era static build: no `-fps_mode` (use `-vsync`). */
export const ffmpegPath: string = executable(ffmpegInstaller.path);
export const ffprobePath: string = executable(ffprobeInstaller.path);

const repoRoot = path.resolve(__dirname, '..', '..');
const streamCacheDir = path.join(repoRoot, '.cache', 'test-streams');

export interface TestStreamOptions {
  width: number;
  height: number;
  fps: number;
  gopSeconds: number;
  seconds: number;
  audio?: boolean;
  /** B-frames between references; x264 veryfast's default (3) when not given. 0: none. */
  bframes?: number;
}

const pendingStreams = new Map<string, Promise<string>>();

/**
 * An FLV of testsrc2 (+ a 440 Hz AAC tone) with a keyframe exactly every
 * `gopSeconds`, cached by its parameters so only the first run pays for encoding.
 */
export function makeTestStream(opts: TestStreamOptions): Promise<string> {
  const audio = opts.audio ?? true;
  const bframes = opts.bframes === undefined ? '' : `-bf${opts.bframes}`;
  const name = `testsrc2-${opts.width}x${opts.height}-${opts.fps}fps-gop${opts.gopSeconds}s-${opts.seconds}s-${audio ? 'aac' : 'noaudio'}${bframes}.flv`;
  const file = path.join(streamCacheDir, name);
  // Concurrent callers in one process share one encode.
  let pending = pendingStreams.get(file);
  if (!pending) {
    pending = encodeTestStream(file, opts, audio);
    pendingStreams.set(file, pending);
    pending.catch(() => pendingStreams.delete(file));
  }
  return pending;
}

async function encodeTestStream(file: string, opts: TestStreamOptions, audio: boolean): Promise<string> {
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Written under a unique temporary name and renamed, so a killed run never
  // leaves a truncated file that later runs would reuse.
  const temporary = `${file}.${process.pid}.${Date.now()}.tmp`;
  const gop = String(Math.round(opts.fps * opts.gopSeconds));
  const args = [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=${opts.width}x${opts.height}:rate=${opts.fps}`,
    ...(audio ? ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'] : []),
    '-t', String(opts.seconds),
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
    '-g', gop, '-keyint_min', gop, '-sc_threshold', '0',
    ...(opts.bframes !== undefined ? ['-bf', String(opts.bframes)] : []),
    ...(audio ? ['-c:a', 'aac'] : []),
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

export interface ProbeResult {
  format: string;
  streams: Array<{ codec_type: string; codec_name: string; width?: number; height?: number; duration?: number }>;
  duration?: number;
}

interface FfprobeJson {
  format?: { format_name?: string; duration?: string };
  streams?: Array<{ codec_type?: string; codec_name?: string; width?: number; height?: number; duration?: string }>;
}

/** ffprobe reports durations as strings, and "N/A" or nothing when unknown. */
function seconds(value: string | undefined): number | undefined {
  const parsed = value === undefined ? NaN : Number.parseFloat(value);
  return Number.isFinite(parsed) ? parsed : undefined;
}

export async function probe(file: string): Promise<ProbeResult> {
  const result = await runTracked(
    ffprobePath,
    ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', file],
    30_000,
  );
  if (result.code !== 0) throw new Error(`ffprobe ${file} failed (exit ${result.code}): ${result.stderr.trim()}`);
  const json = JSON.parse(result.stdout) as FfprobeJson;
  return {
    format: json.format?.format_name ?? '',
    streams: (json.streams ?? []).map((stream) => ({
      codec_type: stream.codec_type ?? '',
      codec_name: stream.codec_name ?? '',
      width: stream.width,
      height: stream.height,
      duration: seconds(stream.duration),
    })),
    duration: seconds(json.format?.duration),
  };
}

export interface DecodedImage {
  codec: string;
  width: number;
  height: number;
  /** Frames the decoder produced: exactly 1 for a whole image. */
  frames: number;
}

/**
 * Decodes a stored image with ffprobe (an independent decoder: not the ffmpeg that wrote it) and
 * says what came out. Throws when ffprobe cannot read it at all.
 */
export async function decodeImage(bytes: Buffer, format: string): Promise<DecodedImage> {
  const stream = (await ffprobeBytes(bytes, format, ['-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height,nb_read_frames'])).streams?.[0];
  return { codec: stream?.codec_name ?? '', width: stream?.width ?? 0, height: stream?.height ?? 0, frames: Number(stream?.nb_read_frames ?? 0) };
}

interface FfprobeOutput {
  format?: { format_name?: string; duration?: string };
  streams?: Array<{ codec_type?: string; codec_name?: string; width?: number; height?: number; nb_read_frames?: string; start_time?: string; duration?: string }>;
}

/** ffprobe (JSON output, errors only) on bytes written to a temporary file; throws when it cannot read them. */
async function ffprobeBytes(bytes: Buffer, extension: string, args: string[]): Promise<FfprobeOutput> {
  return withTemporaryFile(bytes, `media.${extension}`, (file) => ffprobeFile(file, args));
}

async function ffprobeFile(file: string, args: string[], timeoutMs = 120_000): Promise<FfprobeOutput> {
  const result = await runTracked(ffprobePath, ['-v', 'error', ...args, '-of', 'json', file], timeoutMs);
  if (result.code !== 0) throw new Error(`ffprobe could not decode ${path.basename(file)} (exit ${result.code}): ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as FfprobeOutput;
}

/** `bytes` as a file named `name` in a fresh temporary directory, removed after `use`. */
async function withTemporaryFile<T>(bytes: Buffer, name: string, use: (file: string) => Promise<T>): Promise<T> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'decode-'));
  const file = path.join(dir, name);
  try {
    await fs.promises.writeFile(file, bytes);
    return await use(file);
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

export interface DecodedMedia {
  format: string;
  duration?: number;
  streams: Array<{ type: string; codec: string; frames: number; startTime?: number; duration?: number }>;
}

/**
 * Decodes a stored recording to the end with ffprobe (every frame of every stream is decoded and
 * counted) and says what came out. Throws when ffprobe cannot read it.
 */
const DECODE_ARGS = ['-count_frames', '-show_entries', 'stream=codec_type,codec_name,nb_read_frames,start_time,duration:format=format_name,duration'];

export async function decodeMedia(bytes: Buffer, extension: string): Promise<DecodedMedia> {
  return withTemporaryFile(bytes, `media.${extension}`, (file) => decodeMediaFile(file));
}

/** decodeMedia of a file on disk (a recording hours long need not be read into memory). */
export async function decodeMediaFile(file: string, timeoutMs = 120_000): Promise<DecodedMedia> {
  return decodedFrom(await ffprobeFile(file, DECODE_ARGS, timeoutMs));
}

function decodedFrom(json: FfprobeOutput): DecodedMedia {
  return {
    format: json.format?.format_name ?? '',
    duration: seconds(json.format?.duration),
    streams: (json.streams ?? []).map((stream) => ({
      type: stream.codec_type ?? '',
      codec: stream.codec_name ?? '',
      frames: Number(stream.nb_read_frames ?? 0),
      startTime: seconds(stream.start_time),
      duration: seconds(stream.duration),
    })),
  };
}

/**
 * Mean luma (Y, 0-255) of the first picture of a stored image or video, decoded by ffprobe (lavfi
 * `movie` + `signalstats`, independent of the ffmpeg that wrote it). Black is 16 in a video-range
 * picture and 0 in a full-range JPEG; the simulator's test patterns average around 100.
 */
export async function firstPictureLuma(bytes: Buffer, extension: string): Promise<number> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'luma-'));
  // A plain name: the movie filter's argument is itself parsed (':' and ',' would need escaping).
  const file = path.join(dir, `first.${extension}`);
  try {
    await fs.promises.writeFile(file, bytes);
    const args = ['-v', 'error', '-f', 'lavfi', '-i', `movie=${file},signalstats`, '-read_intervals', '%+#1', '-show_entries', 'frame_tags=lavfi.signalstats.YAVG', '-of', 'json'];
    const result = await runTracked(ffprobePath, args, 60_000);
    if (result.code !== 0) throw new Error(`ffprobe could not decode the first picture of ${bytes.length} bytes of ${extension}: ${result.stderr.trim()}`);
    const frames = (JSON.parse(result.stdout) as { frames?: Array<{ tags?: Record<string, string> }> }).frames ?? [];
    const luma = Number(frames[0]?.tags?.['lavfi.signalstats.YAVG']);
    if (!Number.isFinite(luma)) throw new Error(`ffprobe decoded no picture from ${bytes.length} bytes of ${extension}`);
    return luma;
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/**
 * The sync pattern's marks in a stored recording (see the room simulator's `syncPattern`), read
 * by ffprobe through lavfi: when the picture turns white (signalstats' mean luma crossing 128)
 * and when the audio turns loud (silencedetect's silence_end), in seconds of the file's timeline.
 */
export async function syncMarks(bytes: Buffer, extension: string): Promise<{ flashes: number[]; beeps: number[] }> {
  // A plain name: the movie filter's argument is itself parsed (':' and ',' would need escaping).
  return withTemporaryFile(bytes, `recording.${extension}`, (file) => syncMarksOfFile(file));
}

const BEEP_WINDOW_S = 10;

/**
 * syncMarks of a file on disk, whose path must need no escaping in a lavfi graph (no ':', ',',
 * quotes or brackets). `timeoutMs` for each of the two ffprobe runs: hours of recording take minutes.
 */
export async function syncMarksOfFile(file: string, timeoutMs = 120_000): Promise<{ flashes: number[]; beeps: number[] }> {
  if (/[:,'"[\]\\;=]/.test(file)) throw new Error(`syncMarksOfFile: ${file} would need escaping in a lavfi graph`);
  const read = async (graph: string, entries: string) => {
    const result = await runTracked(ffprobePath, ['-v', 'error', '-f', 'lavfi', '-i', graph, '-show_entries', entries, '-of', 'json'], timeoutMs);
    if (result.code !== 0) throw new Error(`ffprobe could not read the sync marks of ${path.basename(file)}: ${result.stderr.trim()}`);
    return (JSON.parse(result.stdout) as { frames?: Array<{ pts_time?: string; tags?: Record<string, string> }> }).frames ?? [];
  };
  const pictures = await read(`movie=${file},signalstats`, 'frame=pts_time:frame_tags=lavfi.signalstats.YAVG');
  const flashes: number[] = [];
  let white = false;
  for (const frame of pictures) {
    const isWhite = Number(frame.tags?.['lavfi.signalstats.YAVG']) > 128;
    if (isWhite && !white) flashes.push(Number(frame.pts_time));
    white = isWhite;
  }
  // silencedetect writes its times with 6 significant digits: 1 ms apart past 100 s, 10 ms past
  // 1000 s. So it is given timestamps modulo BEEP_WINDOW_S, and the windows are counted back in.
  const sound = await read(
    `amovie=${file},asetpts=PTS-floor(PTS*TB/${BEEP_WINDOW_S})*${BEEP_WINDOW_S}/TB,silencedetect=n=-30dB:d=0.05`,
    'frame=pts_time:frame_tags=lavfi.silence_end',
  );
  const beeps: number[] = [];
  let windows = 0;
  let previous = -Infinity;
  for (const frame of sound) {
    const pts = Number(frame.pts_time);
    if (pts < previous) windows++;
    previous = pts;
    const end = frame.tags?.['lavfi.silence_end'];
    if (end === undefined) continue;
    // The end may lie in the window before this frame's start, or (hardly) after it.
    let at = Number(end);
    if (at - pts > BEEP_WINDOW_S / 2) at -= BEEP_WINDOW_S;
    else if (pts - at > BEEP_WINDOW_S / 2) at += BEEP_WINDOW_S;
    beeps.push(windows * BEEP_WINDOW_S + at);
  }
  return { flashes, beeps };
}

/**
 * Decodes an HLS recording through its playlist (a URL or a local path) with ffprobe's HLS
 * demuxer, every frame of every stream, as decodeMedia does for a file.
 */
export async function decodePlaylist(playlist: string): Promise<DecodedMedia> {
  return decodedFrom(await ffprobeFile(playlist, DECODE_ARGS));
}
