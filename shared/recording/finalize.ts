import { rm, stat } from 'node:fs/promises';
import { pipeline, Transform } from 'node:stream';
import { describeExit, FfmpegProcess } from '../ffmpeg/supervisor';
import type { ObjectStore } from '../storage/types';
import { finalizeArgs, type RecordMode } from './args';

export interface FinalizeRequest {
  flvPath: string;
  mode: RecordMode;
  key: string;
  store: ObjectStore;
  ffmpegPath: string;
  /** Bytes that may still be written where the FLV lies (free space within any budget). */
  freeBytes: () => Promise<number>;
  signal?: AbortSignal;
}

export interface FinalizeOutcome {
  /** Where it failed, for the contract's Message: transcoding or writing to COS. */
  failedStep?: 'transcoding' | 'writing to COS';
  error?: string;
  bytes?: number;
  /** How the file was produced: a faststart MP4 on disk, or streamed without touching disk. */
  method: 'faststart-file' | 'streamed';
}

const FIRST_EXTRA_PIPE = 3;

/**
 * FLV → MP3/MP4 by stream copy, then into storage. MP3 always streams straight to storage.
 * MP4 is written with +faststart next to the FLV when the disk has room for a copy;
 * otherwise it streams as fragmented MP4, so finalising never needs twice the recording's size.
 * The FLV is removed once its result is stored.
 */
export async function finalizeRecording(request: FinalizeRequest): Promise<FinalizeOutcome> {
  const flvBytes = (await stat(request.flvPath)).size;
  const faststartFits = request.mode !== '00' && (await request.freeBytes()) > flvBytes * 1.05 + 1024 * 1024;
  const outcome = faststartFits ? await finalizeToFile(request) : await finalizeStreamed(request);
  if (!outcome.failedStep) await rm(request.flvPath, { force: true });
  return outcome;
}

async function finalizeToFile(request: FinalizeRequest): Promise<FinalizeOutcome> {
  const mp4Path = request.flvPath.replace(/\.flv$/, '.mp4');
  try {
    const exit = await new FfmpegProcess({ binary: request.ffmpegPath, args: finalizeArgs({ inputPath: request.flvPath, mode: request.mode, output: mp4Path }) }).exited;
    if (exit.code !== 0) return { method: 'faststart-file', failedStep: 'transcoding', error: describeExit(exit) };
    const bytes = (await stat(mp4Path)).size;
    try {
      await request.store.putFile(request.key, mp4Path, { contentType: 'video/mp4', signal: request.signal });
    } catch (error) {
      return { method: 'faststart-file', failedStep: 'writing to COS', error: messageOf(error), bytes };
    }
    return { method: 'faststart-file', bytes };
  } finally {
    await rm(mp4Path, { force: true });
  }
}

async function finalizeStreamed(request: FinalizeRequest): Promise<FinalizeOutcome> {
  const output = `pipe:${FIRST_EXTRA_PIPE}`;
  const args = finalizeArgs({ inputPath: request.flvPath, mode: request.mode, output, fragmented: true });
  const ffmpeg = new FfmpegProcess({ binary: request.ffmpegPath, args, extraPipes: 1 });
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  // pipeline() tears both ends down if either fails, so ffmpeg never blocks on a dead reader.
  pipeline(ffmpeg.pipe(FIRST_EXTRA_PIPE), counted, () => {});
  const contentType = request.mode === '00' ? 'audio/mpeg' : 'video/mp4';
  const upload = request.store.putStream(request.key, counted, { contentType, signal: request.signal }).then(
    () => undefined,
    (error: unknown) => {
      void ffmpeg.stop('requested');
      return error;
    },
  );
  const [exit, uploadError] = await Promise.all([ffmpeg.exited, upload]);
  const method = 'streamed' as const;
  // A failed upload closes the pipe, which fails ffmpeg too: the upload is the cause.
  if (uploadError) return { method, failedStep: 'writing to COS', error: messageOf(uploadError), bytes };
  if (exit.code !== 0) return { method, failedStep: 'transcoding', error: describeExit(exit) };
  return { method, bytes };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
