import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { describeExit, FfmpegProcess } from '../ffmpeg/supervisor';
import type { Logger } from '../log';
import { RawVideoMatroskaWriter } from '../media/mkv-writer';
import { i420Size } from '../media/raw-media';
import { ImageDirectory } from '../outputs/images/image-files';
import { pumpSegments, type SegmentSinks } from '../outputs/recording/segment-pump';
import { recordingArgs, type EncoderContainer, type RawAudioFormat, type RawVideoFormat, type RecordingPipes } from '../outputs/recording/encoder-args';
import { finishUpload, type GrowingObjectResult } from '../upload/growing-object';
import { finishHlsUpload, type HlsUploadResult } from '../upload/hls-upload';

/**
 * One piece of an anchor's recording: an encoder fed raw pictures (Matroska-framed, each with its
 * own time) and PCM, whose output goes as it comes to a growing object, HLS, or both. The anchor's timeline
 * decides what to write and when; the piece writes it, says when its encoder is behind, and
 * reports what was stored once its encoder finished and its upload ended.
 */

export interface RecordedPiece {
  index: number;
  /** Wall time of the piece's first frame (ms). */
  startedAt: number;
  /** Seconds of media in the piece (frames / fps, or samples / rate). */
  durationSec: number;
  /** Pictures of the piece not encoded because the encoder could not keep up. */
  droppedFrames: number;
  /** Audio that came too late for its time (after a stall), cut so what follows stays in sync, ms. */
  lateAudioMs: number;
  /** The growing file, when the format has one. */
  upload?: GrowingObjectResult;
  /** The HLS playlist, when the format has one. */
  hls?: HlsUploadResult;
  /** Set when the encoder failed; what it wrote before is stored. */
  error?: string;
}

export interface EncodedPieceOptions {
  index: number;
  /** Wall time (ms) of the piece's first frame. */
  startedAt: number;
  /** Room time (ms since the recording started) where the piece begins. */
  startMs: number;
  video?: RawVideoFormat;
  audio?: RawAudioFormat;
  pipes: RecordingPipes;
  container: EncoderContainer;
  /** JPEGs every `intervalSec` from the encoded pictures, to `outputPattern`. */
  snapshots?: { intervalSec: number; outputPattern: string };
  ffmpegPath: string;
  env?: Record<string, string>;
  uploads: SegmentSinks;
  logger: Logger;
  anchor: string;
}

/** How far the encoder may fall behind, and how long it may take to finish. */
const ENCODER_LIMITS = {
  /**
   * Pictures waiting beyond this many bytes are not queued: the encoder is behind. Room for an
   * encoder's start-up (a few hundred ms) at 720p; a few frames at 1080p.
   */
  videoBacklogBytes: 12 * 1024 * 1024,
  /** Audio waiting beyond this is dropped (the gap becomes silence later). */
  audioBacklogMs: 1_000,
  /** An encoder that does not finish within this after its input ended is stopped. */
  finishGraceMs: 30_000,
} as const;

/**
 * How far behind a VirtualClock lets the encoder fall before it waits (see inputPending): a few
 * pictures (far under videoBacklogBytes at any size) once the encoder is under way, audio well under
 * audioBacklogMs. Starting, the encoder takes hardly any pictures until it has about 2 s of audio
 * (measured with the bundled ffmpeg: given 40 pictures and 1 s of audio at once it took 1-2 of the
 * pictures, given 2.5 s of audio all 40): over a piece's first startupMs the pictures may wait up
 * to startupMs, so time moves on and brings the audio. At 320x240 that is 5 MB, under
 * videoBacklogBytes; at 720p it is not, and the recorder drops pictures at a piece's start (as in
 * real time, a few).
 */
const VIRTUAL_CLOCK_SLACK = { videoFrames: 3, audioMs: 500, startupMs: 3_000 } as const;

export class EncodedPiece {
  readonly index: number;
  readonly startedAt: number;
  /** Room time of the piece's first picture, and of its latest (ms). */
  readonly videoStartMs: number;
  lastVideoMs: number;
  audioSamples = 0;
  droppedFrames = 0;
  lateAudioMs = 0;
  readonly done: Promise<RecordedPiece>;
  private readonly ffmpeg: FfmpegProcess;
  private readonly mkv: RawVideoMatroskaWriter | undefined;
  private error: string | undefined;

  constructor(private readonly options: EncodedPieceOptions) {
    const { video, audio, pipes } = options;
    this.index = options.index;
    this.startedAt = options.startedAt;
    this.videoStartMs = options.startMs;
    this.lastVideoMs = options.startMs - 1;
    this.ffmpeg = new FfmpegProcess({
      binary: options.ffmpegPath,
      args: recordingArgs({ video, audio, container: options.container, snapshots: options.snapshots }),
      // Fed by us, not a network: no liveness watchdog.
      extraPipes: pipes.output - 2,
      env: options.env,
    });
    this.mkv = video ? new RawVideoMatroskaWriter(video.width, video.height) : undefined;
    if (this.mkv) this.pipe(pipes.video!).write(this.mkv.header());
    const drained = this.drainOutput();
    void this.ffmpeg.exited.then((exit) => {
      if (exit.code !== 0 && !this.error) this.error = describeExit(exit);
    });
    this.done = this.closed(drained);
  }

  get hasVideo(): boolean {
    return this.mkv !== undefined;
  }

  /** Bytes the piece's file is heading for (stored and pending); 0 without a file. */
  get fileBytes(): number {
    return this.options.uploads.file?.totalBytes ?? 0;
  }

  /** One picture at room time `roomMs`. */
  writePicture(picture: Buffer, roomMs: number): void {
    const input = this.pipe(this.options.pipes.video!);
    for (const part of this.mkv!.frame(roomMs - this.videoStartMs, picture)) input.write(part);
    this.lastVideoMs = roomMs;
  }

  /** PCM in the recording's audio format; `samples` per channel. */
  writeAudio(pcm: Buffer, samples: number): void {
    this.pipe(this.options.pipes.audio!).write(pcm);
    this.audioSamples += samples;
  }

  videoCongested(): boolean {
    const { width, height } = this.options.video!;
    return this.pipe(this.options.pipes.video!).writableLength > Math.max(ENCODER_LIMITS.videoBacklogBytes, 2 * i420Size(width, height));
  }

  audioCongested(): boolean {
    const format = this.options.audio!;
    return this.pipe(this.options.pipes.audio!).writableLength > (format.sampleRate * format.channels * 2 * ENCODER_LIMITS.audioBacklogMs) / 1000;
  }

  /**
   * For a VirtualClock (see shared/clock.ts), which must not run ahead of the encoder: while the
   * encoder is behind by more than VIRTUAL_CLOCK_SLACK on an input, a promise resolved once it has
   * taken all that was written there (or the pipe is gone); undefined otherwise.
   */
  inputPending(): Promise<void> | undefined {
    const { video, audio, pipes } = this.options;
    const behind: Duplex[] = [];
    if (video && pipes.video !== undefined) {
      const pipe = this.pipe(pipes.video);
      const starting = audio !== undefined && this.lastVideoMs - this.videoStartMs < VIRTUAL_CLOCK_SLACK.startupMs;
      const slackFrames = starting ? (video.fps * VIRTUAL_CLOCK_SLACK.startupMs) / 1000 : VIRTUAL_CLOCK_SLACK.videoFrames;
      if (pipe.writableLength > i420Size(video.width, video.height) * slackFrames) behind.push(pipe);
    }
    if (audio && pipes.audio !== undefined) {
      const pipe = this.pipe(pipes.audio);
      if (pipe.writableLength > (audio.sampleRate * audio.channels * 2 * VIRTUAL_CLOCK_SLACK.audioMs) / 1000) behind.push(pipe);
    }
    const waiting = behind.filter((pipe) => pipe.writableNeedDrain && !pipe.writableEnded && !pipe.destroyed);
    if (waiting.length === 0) return undefined;
    const drained = (pipe: Duplex) =>
      new Promise<void>((resolve) => {
        const done = () => {
          pipe.off('drain', done).off('close', done).off('error', done);
          resolve();
        };
        pipe.on('drain', done).on('close', done).on('error', done);
      });
    return Promise.all(waiting.map(drained)).then(() => undefined);
  }

  /** Ends the encoder's input; it finishes and the upload completes on their own (see done). */
  close(): void {
    for (const fd of [this.options.pipes.video, this.options.pipes.audio]) if (fd !== undefined) this.pipe(fd).end();
    const backstop = setTimeout(() => void this.ffmpeg.stop('requested'), ENCODER_LIMITS.finishGraceMs);
    void this.ffmpeg.exited.finally(() => clearTimeout(backstop));
  }

  private pipe(fd: number): Duplex {
    return this.ffmpeg.pipe(fd);
  }

  /** Hands the encoder's output to the uploads in whole pieces, waiting when one is full. */
  private async drainOutput(): Promise<void> {
    try {
      await pumpSegments(this.pipe(this.options.pipes.output) as AsyncIterable<Buffer>, this.options.container, this.options.uploads);
    } catch (error) {
      this.error ??= `reading the encoder's output failed: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  /** A piece is done when its encoder exited, its output was handed over, and its uploads ended. */
  private async closed(drained: Promise<void>): Promise<RecordedPiece> {
    await Promise.all([this.ffmpeg.exited, drained]);
    const { file, hls } = this.options.uploads;
    const [upload, playlist] = await Promise.all([file && finishUpload(file), hls && finishHlsUpload(hls)]);
    const { video, audio } = this.options;
    const durationSec = video ? (this.lastVideoMs - this.videoStartMs + 1000 / video.fps) / 1000 : this.audioSamples / audio!.sampleRate;
    this.options.logger.info('recording piece closed', { anchor: this.options.anchor, piece: this.index, durationSec, bytes: upload?.storedBytes, segments: playlist?.segments });
    return {
      index: this.index,
      startedAt: this.startedAt,
      durationSec,
      droppedFrames: this.droppedFrames,
      lateAudioMs: Math.round(this.lateAudioMs),
      ...(upload ? { upload } : {}),
      ...(playlist ? { hls: playlist } : {}),
      ...(this.error ? { error: this.error } : {}),
    };
  }
}

/** Where piece `index`'s encoder writes its snapshots (ffmpeg's image2 pattern). */
export const pieceSnapshotPattern = (dir: string, index: number) => join(dir, `p${index}-%d.jpg`);

/**
 * Hands each snapshot the pieces' encoders finish to `onImage`, in order, with its wall time:
 * the piece's start plus the image's time within the piece.
 */
export function watchPieceSnapshots(
  dir: string,
  pieceStartedAt: (index: number) => number | undefined,
  onImage: (path: string, wallTimeMs: number) => Promise<void>,
  logger: Logger,
): ImageDirectory {
  mkdirSync(dir, { recursive: true });
  return new ImageDirectory(dir, {
    orderOf: (name) => {
      const match = /^p(\d+)-(\d+)\.jpg$/.exec(name);
      return match ? Number(match[1]) * 1e12 + Number(match[2]) : undefined;
    },
    onImage: async (name, order) => {
      const startedAt = pieceStartedAt(Math.floor(order / 1e12));
      if (startedAt !== undefined) await onImage(join(dir, name), startedAt + (order % 1e12));
    },
    logger,
  });
}
