import { supervisedRunArgs } from '../../ffmpeg/args';
import { imageEncoderArgs, imageFilters } from '../images/format';

/** The contract's modes: 00 audio → MP3, 01 video → MP4, 02 both → MP4. */
export const RECORD_MODES = ['00', '01', '02'] as const;
export type RecordMode = (typeof RECORD_MODES)[number];

export function modeTracks(mode: RecordMode): { audio: boolean; video: boolean } {
  return { audio: mode !== '01', video: mode !== '00' };
}

/**
 * What a recording is stored as (OutputFormat): one growing file (fragmented MP4, or MP3 for
 * audio alone), HLS (CMAF segments and a playlist), or both from the same encoder output.
 */
export const OUTPUT_FORMATS = ['mp4', 'mp3', 'hls', 'hls+mp4'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const defaultOutputFormat = (mode: RecordMode): OutputFormat => (mode === '00' ? 'mp3' : 'mp4');

/** What the encoder writes: MP3 frames for 'mp3', else fragmented MP4 (which HLS's CMAF segments are cut from). */
export type EncoderContainer = 'mp4' | 'mp3';
export const encoderContainer = (format: OutputFormat): EncoderContainer => (format === 'mp3' ? 'mp3' : 'mp4');

/** The objects a format stores: a growing file (and its container) and/or HLS. */
export function formatOutputs(format: OutputFormat): { file?: EncoderContainer; hls: boolean } {
  if (format === 'hls') return { hls: true };
  return { file: encoderContainer(format), hls: format === 'hls+mp4' };
}

export function recordingContentType(container: EncoderContainer, hasVideo: boolean): string {
  return container === 'mp3' ? 'audio/mpeg' : hasVideo ? 'video/mp4' : 'audio/mp4';
}

export interface RawVideoFormat {
  width: number;
  height: number;
  fps: number;
}

export interface RawAudioFormat {
  sampleRate: number;
  channels: number;
}

/** The audio a recording is encoded from when the room leaves the choice to us (liteav hands over what it is asked for). */
export const RECORDING_AUDIO: RawAudioFormat = { sampleRate: 48_000, channels: 1 };

/** First extra pipe; video comes first when both are present, the output last. */
const FIRST_PIPE_FD = 3;

export interface RecordingPipes {
  video?: number;
  audio?: number;
  /** What ffmpeg writes: fragmented MP4 or MP3. */
  output: number;
}

export function recordingPipes(tracks: { audio: boolean; video: boolean }): RecordingPipes {
  let fd = FIRST_PIPE_FD;
  const video = tracks.video ? fd++ : undefined;
  const audio = tracks.audio ? fd++ : undefined;
  return { ...(video !== undefined ? { video } : {}), ...(audio !== undefined ? { audio } : {}), output: fd };
}

/**
 * x264 preset for anchors. Measured per anchor-minute at 720p15 with zerolatency (bundled ffmpeg,
 * `npm run bench:record`): superfast costs about a quarter less CPU than veryfast for a few percent
 * more bitrate; ultrafast costs more, not less, at the same CRF (its bitrate balloons).
 */
export const ANCHOR_X264_PRESET = 'superfast';
/** One fragment per GOP: what a crash can lose, at most, of what reached the encoder. */
export const KEYFRAME_SECONDS = 2;

export interface RecordingPlan {
  video?: RawVideoFormat;
  audio?: RawAudioFormat;
  /** What the encoder writes; MP3 only without video. */
  container: EncoderContainer;
  /** Also write a JPEG every `intervalSec` of the recording, named by its time in ms. */
  snapshots?: { intervalSec: number; outputPattern: string };
}

/** No fragment is longer than this (µs), keyframe or not. */
const FRAGMENT_MAX_US = KEYFRAME_SECONDS * 1_000_000;

/**
 * One anchor's encoder: raw I420 pictures (timestamped, in Matroska) and/or s16le PCM in through
 * pipes, out through a pipe as it is made — fragmented MP4 (H.264 and/or AAC, a fragment per
 * keyframe, and at most KEYFRAME_SECONDS long) or bare MP3 frames (no ID3 or Xing header:
 * a header written at the start would state totals for a file that is still growing).
 * Snapshots, when asked for, come from the same decoded pictures: no second decode.
 */
export function recordingArgs(plan: RecordingPlan): string[] {
  const pipes = recordingPipes({ video: !!plan.video, audio: !!plan.audio });
  const args = supervisedRunArgs();
  if (plan.video && pipes.video) {
    // Raw pictures in Matroska, each with its own timestamp (see RawVideoMatroskaWriter). The header
    // says everything: without probing, ffmpeg starts at once instead of reading seconds of pictures
    // first while the audio pipe, not yet read, backs up.
    args.push('-analyzeduration', '0', '-probesize', '32', '-f', 'matroska', '-i', `pipe:${pipes.video}`);
  }
  if (plan.audio && pipes.audio) {
    const { sampleRate, channels } = plan.audio;
    args.push('-f', 's16le', '-ar', String(sampleRate), '-ac', String(channels), '-i', `pipe:${pipes.audio}`);
  }
  if (plan.video) {
    // zerolatency: no B-frames or lookahead, so nothing is held back and memory stays small. vfr:
    // a picture we did not send lasts longer instead of being invented. A keyframe (so a fragment)
    // every KEYFRAME_SECONDS of time however many pictures came.
    args.push('-map', '0:v', '-c:v', 'libx264', '-preset', ANCHOR_X264_PRESET, '-tune', 'zerolatency', '-crf', '23', '-vsync', 'vfr');
    args.push('-g', String(plan.video.fps * KEYFRAME_SECONDS), '-force_key_frames', `expr:gte(t,n_forced*${KEYFRAME_SECONDS})`, '-pix_fmt', 'yuv420p');
  }
  if (plan.audio) args.push('-map', `${plan.video ? 1 : 0}:a`);
  if (plan.container === 'mp4') {
    if (plan.audio) args.push('-c:a', 'aac', '-b:a', '96k');
    // A fragment per keyframe; and at least every KEYFRAME_SECONDS of any track, for audio alone
    // and for the time an anchor is away (one black picture, no keyframes): a fragment larger than
    // the muxer's 32 KB output buffer gets no size on a pipe (a moof of size 0), ending the file.
    // No mfra index at the end: past ~30 min it outgrows that buffer too (size 0), and a growing
    // file is played without it anyway.
    const movflags = `${plan.video ? '+frag_keyframe' : ''}+empty_moov+default_base_moof+skip_trailer`;
    args.push('-f', 'mp4', '-movflags', movflags, '-frag_duration', String(FRAGMENT_MAX_US), `pipe:${pipes.output}`);
  } else {
    if (plan.video) throw new Error('recordingArgs: MP3 holds audio alone');
    args.push('-c:a', 'libmp3lame', '-b:a', '64k', '-f', 'mp3', '-write_xing', '0', '-id3v2_version', '0', `pipe:${pipes.output}`);
  }
  if (plan.video && plan.snapshots) {
    const select = `select='isnan(prev_selected_t)+gte(t-prev_selected_t,${plan.snapshots.intervalSec})'`;
    args.push('-map', '0:v', '-vf', [select, ...imageFilters('jpg')].join(','), '-vsync', 'vfr', '-r', '1000', ...imageEncoderArgs('jpg'));
    args.push('-f', 'image2', '-frame_pts', '1', '-atomic_writing', '1', plan.snapshots.outputPattern);
  }
  return args;
}
