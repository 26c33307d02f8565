import { supervisedRunArgs } from '../ffmpeg/args';

/** The contract's modes: 00 audio → MP3, 01 video → MP4, 02 both → MP4. */
export const RECORD_MODES = ['00', '01', '02'] as const;
export type RecordMode = (typeof RECORD_MODES)[number];

export function modeTracks(mode: RecordMode): { audio: boolean; video: boolean } {
  return { audio: mode !== '01', video: mode !== '00' };
}

export const recordingExtension = (mode: RecordMode) => (mode === '00' ? 'mp3' : 'mp4');

export interface RawVideoFormat {
  width: number;
  height: number;
  fps: number;
}

export interface RawAudioFormat {
  sampleRate: number;
  channels: number;
}

/** First extra pipe; video comes first when both are present. */
const FIRST_PIPE_FD = 3;

export interface RecordingPipes {
  video?: number;
  audio?: number;
}

export function recordingPipes(tracks: { audio: boolean; video: boolean }): RecordingPipes {
  const pipes: RecordingPipes = {};
  let fd = FIRST_PIPE_FD;
  if (tracks.video) pipes.video = fd++;
  if (tracks.audio) pipes.audio = fd++;
  return pipes;
}

/**
 * One anchor's recorder: raw I420 and/or s16le PCM in through pipes, FLV out.
 * Audio-only recordings carry MP3 (FLV can), so finalising to .mp3 is a stream copy;
 * with video, H.264 + AAC, so finalising to .mp4 is a stream copy too.
 */
export function recordingArgs(options: { video?: RawVideoFormat; audio?: RawAudioFormat; outputPath: string }): string[] {
  const pipes = recordingPipes({ video: !!options.video, audio: !!options.audio });
  const args = supervisedRunArgs();
  if (options.video && pipes.video) {
    const { width, height, fps } = options.video;
    args.push('-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-video_size', `${width}x${height}`, '-framerate', String(fps), '-i', `pipe:${pipes.video}`);
  }
  if (options.audio && pipes.audio) {
    const { sampleRate, channels } = options.audio;
    args.push('-f', 's16le', '-ar', String(sampleRate), '-ac', String(channels), '-i', `pipe:${pipes.audio}`);
  }
  if (options.video) {
    // zerolatency: no B-frames or lookahead, so memory stays small and nothing is held back.
    args.push('-map', '0:v', '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-crf', '23', '-g', String(options.video.fps * 2), '-pix_fmt', 'yuv420p');
  }
  if (options.audio) {
    args.push('-map', `${options.video ? 1 : 0}:a`);
    // FLV carries MP3 only at 44.1/22.05/11.025 kHz (48 kHz by convention), so it is pinned.
    args.push(...(options.video ? ['-c:a', 'aac', '-b:a', '96k'] : ['-c:a', 'libmp3lame', '-b:a', '64k', '-ar', '48000']));
  }
  args.push('-f', 'flv', '-y', options.outputPath);
  return args;
}

/** FLV → the delivered container by stream copy, written to `output` (a path, or `pipe:3`). */
export function finalizeArgs(options: { inputPath: string; mode: RecordMode; output: string; fragmented?: boolean }): string[] {
  const args = [...supervisedRunArgs(), '-i', options.inputPath, '-map', '0', '-c', 'copy'];
  if (options.mode === '00') return [...args, '-f', 'mp3', '-y', options.output];
  // Fragmented MP4 needs no seek-back, so it can stream straight to storage when disk is short;
  // it plays from the first fragment like a faststart file.
  const movflags = options.fragmented ? '+frag_keyframe+empty_moov+default_base_moof' : '+faststart';
  return [...args, '-movflags', movflags, '-f', 'mp4', '-y', options.output];
}
