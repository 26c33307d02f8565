import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { describeExit, FfmpegProcess } from '../ffmpeg/supervisor';
import type { Logger } from '../log';
import { Mp3FrameReader } from '../media/mp3-frames';
import { Mp4SegmentReader } from '../media/mp4-boxes';
import { RawVideoMatroskaWriter } from '../media/mkv-writer';
import { blackI420, convertPcm, i420Size, scaleI420 } from '../media/raw-media';
import { ImageDirectory } from '../outputs/images/image-files';
import { modeTracks, RECORDING_AUDIO, recordingArgs, recordingPipes, type RawAudioFormat, type RawVideoFormat, type RecordingPipes, type RecordMode } from '../outputs/recording/encoder-args';
import type { AudioFrame, VideoFrame } from '../sources/room-source';
import type { GrowingObjectResult, GrowingObjectUpload } from '../upload/growing-object';

export interface AnchorRecorderOptions {
  userId: string;
  mode: RecordMode;
  ffmpegPath: string;
  logger: Logger;
  /** ffmpeg's environment additions (the work dir it belongs to). */
  env?: Record<string, string>;
  videoFps?: number;
  /** Used when no video frame arrives within `videoWaitMs` (the camera is off). */
  fallbackVideoSize?: { width: number; height: number };
  videoWaitMs?: number;
  /** Monotonic ms; injectable for tests and benchmarks (with clockTickMs, to run faster than real time). */
  now?: () => number;
  /** How often the clock looks at the time (real ms); one frame interval by default. */
  clockTickMs?: number;
  /** Each piece of the recording is at most this long (ms of recording); unlimited when absent. */
  maxPieceMs?: number;
  /** A piece whose object reaches this many bytes is closed and a new one begun. */
  maxPieceBytes?: number;
  /** Opens the upload a new piece goes to; `startedAt` is the wall time of its first frame. */
  openPiece: (index: number, startedAt: number) => GrowingObjectUpload;
  /** JPEGs every `intervalSec` from the pictures being encoded, written under `dir`. */
  snapshots?: { intervalSec: number; dir: string; onImage: (path: string, wallTimeMs: number) => Promise<void> };
}

export interface RecordedPiece {
  index: number;
  /** Wall time of the piece's first frame (ms). */
  startedAt: number;
  /** Seconds of media in the piece (frames / fps, or samples / rate). */
  durationSec: number;
  /** Pictures of the piece not encoded because the encoder could not keep up. */
  droppedFrames: number;
  upload: GrowingObjectResult;
  /** Set when the encoder failed; what it wrote before is stored. */
  error?: string;
}

export interface AnchorRecording {
  userId: string;
  pieces: RecordedPiece[];
  /** Pictures not encoded because the encoder could not keep up (the one before lasts longer). */
  droppedFrames: number;
  /** Set when nothing could be recorded at all. */
  error?: string;
}

/** A late video frame is repeated this long, then the picture goes black. */
const FREEZE_LIMIT_MS = 1_000;
/** Audio further behind room time than this is a gap: fill it with silence. */
const AUDIO_GAP_MS = 120;
/** Audio further ahead than this (a burst after a stall) is dropped to keep sync. */
const AUDIO_AHEAD_MS = 500;
const AUDIO_TICK_MS = 20;
/** 10 s of TRTC's 20 ms audio frames. */
const PENDING_AUDIO_FRAMES_LIMIT = 500;
/**
 * Pictures waiting for the encoder beyond this many bytes are not queued: the encoder is behind.
 * Room for an encoder's start-up (a few hundred ms) at 720p; a few frames at 1080p.
 */
const VIDEO_BACKLOG_BYTES = 12 * 1024 * 1024;
/** Audio waiting for the encoder beyond this is dropped (the gap becomes silence later). */
const AUDIO_BACKLOG_MS = 1_000;
/** An encoder that does not finish within this after its input ended is stopped. */
const ENCODER_FINISH_GRACE_MS = 30_000;

interface Piece {
  index: number;
  startedAt: number;
  ffmpeg: FfmpegProcess;
  upload: GrowingObjectUpload;
  /** Matroska framing of this piece's pictures; timestamps start at 0 with the piece. */
  mkv?: RawVideoMatroskaWriter;
  /** Room time (ms since the recording started) of the piece's first picture, and of its latest. */
  videoStartMs: number;
  lastVideoMs: number;
  audioSamples: number;
  droppedFrames: number;
  /** Resolves when everything the encoder wrote has been handed to the upload. */
  drained: Promise<void>;
  error?: string;
}

/**
 * Records one anchor in room time, straight into storage. Frames arrive whenever the room
 * delivers them; a clock turns them into constant-rate streams for the encoder — each video tick
 * takes the newest picture (frozen briefly, then black when none comes), audio gaps become
 * silence — so an anchor who drops out, mutes or leaves and returns keeps a timeline that matches
 * the room, with audio and video in sync. The encoder's output goes, piece by piece, to a
 * growing object (see GrowingObjectUpload); the disk holds only what storage could not take yet.
 *
 * Every picture goes to the encoder with its own timestamp, so when the encoder cannot keep up a
 * tick's picture is simply not sent (and counted as dropped): the previous one lasts longer in the
 * file, memory stays bounded, nothing is queued, and the file still covers the room's time.
 */
export class AnchorRecorder {
  private readonly tracks: { audio: boolean; video: boolean };
  private readonly pipes: RecordingPipes;
  private readonly fps: number;
  private readonly now: () => number;
  private piece: Piece | undefined;
  private readonly pieces: Array<{ piece: Piece; done: Promise<RecordedPiece> }> = [];
  private videoFormat: RawVideoFormat | undefined;
  private audioFormat: RawAudioFormat | undefined;
  private startedAt: number | undefined;
  private startedAtWall = 0;
  private latestPicture: { frame: VideoFrame; at: number } | undefined;
  private blackPicture: Buffer | undefined;
  private silence: Buffer | undefined;
  /** The recording's timeline: the last video tick handled (frame index since the start), and audio samples written. */
  private lastTick = -1;
  private audioSamplesWritten = 0;
  private droppedFrames = 0;
  private pendingAudio: AudioFrame[] = [];
  /** Converted audio that arrived ahead of the clock (see writeAudio). */
  private heldAudio: Buffer[] = [];
  private clock: NodeJS.Timeout | undefined;
  private startTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<AnchorRecording> | undefined;
  private snapshotDir: ImageDirectory | undefined;
  /** The anchor left the room: nothing is written until it is back. */
  private away = false;

  constructor(private readonly options: AnchorRecorderOptions) {
    this.tracks = modeTracks(options.mode);
    this.pipes = recordingPipes(this.tracks);
    this.fps = options.videoFps ?? 15;
    this.now = options.now ?? (() => performance.now());
  }

  videoFrame(frame: VideoFrame): void {
    if (!this.tracks.video || this.stopping) return;
    this.back();
    this.markStart();
    this.latestPicture = { frame, at: this.now() };
    if (!this.piece) this.start({ width: frame.width, height: frame.height });
    // Shed before they reached us (the room process drops pictures Node reads too slowly): counted alike.
    if (frame.droppedBefore && this.piece) {
      this.droppedFrames += frame.droppedBefore;
      this.piece.droppedFrames += frame.droppedBefore;
    }
  }

  audioFrame(frame: AudioFrame): void {
    if (!this.tracks.audio || this.stopping) return;
    this.back();
    this.markStart();
    if (!this.piece) {
      this.pendingAudio.push(frame);
      // Bounded: only the wait for a first picture is ever buffered.
      if (this.pendingAudio.length > PENDING_AUDIO_FRAMES_LIMIT) this.pendingAudio.shift();
      if (!this.tracks.video) this.start(undefined);
      return;
    }
    this.writeAudio(frame);
  }

  /**
   * The anchor left the room. The recording stops growing; if the anchor comes back, the time
   * away is filled with black and silence, so the timeline still matches the room. If it never
   * comes back, the recording ends where it left.
   */
  anchorLeft(): void {
    if (this.piece && !this.away) this.tick();
    this.away = true;
  }

  /** The anchor is back: the time away becomes black and silence, written at once. */
  private back(): void {
    if (!this.away) return;
    this.away = false;
    if (!this.piece) return;
    const elapsed = this.elapsedMs();
    if (this.videoFormat) {
      // One black picture from just after the anchor left: it lasts until the next one.
      const { width, height } = this.videoFormat;
      const resumeTick = Math.floor((elapsed * this.fps) / 1000);
      if (resumeTick > this.lastTick + 1) this.writeVideoFrame((this.blackPicture ??= blackI420(width, height)), this.lastTick + 1);
      this.lastTick = Math.max(this.lastTick, resumeTick - 1);
    }
    // Audio that arrived ahead of the clock before leaving goes first, then silence for the time away.
    if (this.audioFormat) this.fillAudioTo(this.audioReleasableSamples());
  }

  /** Ends the recording: pads to the current room time, closes the encoder, stores what is left. */
  stop(): Promise<AnchorRecording> {
    this.stopping ??= this.finish();
    return this.stopping;
  }

  private markStart(): void {
    if (this.startedAt !== undefined) return;
    this.startedAt = this.now();
    this.startedAtWall = Date.now();
    // With video, wait a moment for the first picture to learn its size.
    if (this.tracks.video) {
      this.startTimer = setTimeout(() => this.piece || this.start(undefined), this.options.videoWaitMs ?? 3_000);
    }
  }

  private start(firstPictureSize: { width: number; height: number } | undefined): void {
    clearTimeout(this.startTimer);
    const size = firstPictureSize ?? this.options.fallbackVideoSize ?? { width: 640, height: 360 };
    this.videoFormat = this.tracks.video ? { ...size, fps: this.fps } : undefined;
    const firstAudio = this.pendingAudio[0];
    this.audioFormat = this.tracks.audio ? (firstAudio ? { sampleRate: firstAudio.sampleRate, channels: firstAudio.channels } : RECORDING_AUDIO) : undefined;
    if (this.options.snapshots && this.tracks.video) {
      const { dir, onImage } = this.options.snapshots;
      mkdirSync(dir, { recursive: true });
      this.snapshotDir = new ImageDirectory(dir, {
        orderOf: (name) => {
          const match = /^p(\d+)-(\d+)\.jpg$/.exec(name);
          return match ? Number(match[1]) * 1e12 + Number(match[2]) : undefined;
        },
        onImage: async (name, order) => {
          const piece = this.pieces[Math.floor(order / 1e12)]?.piece;
          if (piece) await onImage(join(dir, name), piece.startedAt + (order % 1e12));
        },
        logger: this.options.logger,
      });
    }
    this.openPiece();
    if (this.videoFormat) {
      // The recording starts when the first media arrived, maybe audio before any picture, and the
      // video starts with it, so both stay aligned. A first picture that came within FREEZE_LIMIT_MS
      // also stands for the moment before it (as a late one is held after it): the file opens on
      // the camera's picture, not black. A later one means the camera was off: black until it comes.
      const firstPictureSoon = this.latestPicture !== undefined && this.latestPicture.at - this.startedAt! <= FREEZE_LIMIT_MS;
      this.writeVideoFrame(firstPictureSoon ? this.currentPicture() : (this.blackPicture ??= blackI420(this.videoFormat.width, this.videoFormat.height)), 0);
      this.lastTick = 0;
    }
    for (const frame of this.pendingAudio.splice(0)) this.writeAudio(frame);
    this.clock = setInterval(() => this.tick(), this.options.clockTickMs ?? (this.tracks.video ? 1000 / this.fps : AUDIO_TICK_MS));
    this.tick();
  }

  /** A new piece (encoder + upload) whose time starts at video tick `startTick` (or where the audio is). */
  private openPiece(startTick?: number): void {
    const index = this.pieces.length;
    const startMs = startTick !== undefined ? this.msOfTick(startTick) : this.timelineMs();
    const startedAt = this.startedAtWall + startMs;
    const ffmpeg = new FfmpegProcess({
      binary: this.options.ffmpegPath,
      args: recordingArgs({
        video: this.videoFormat,
        audio: this.audioFormat,
        snapshots: this.options.snapshots && this.videoFormat ? { intervalSec: this.options.snapshots.intervalSec, outputPattern: join(this.options.snapshots.dir, `p${index}-%d.jpg`) } : undefined,
      }),
      // Fed by us, not a network: no liveness watchdog.
      extraPipes: this.pipes.output - 2,
      env: this.options.env,
    });
    const upload = this.options.openPiece(index, startedAt);
    const piece: Piece = {
      index,
      startedAt,
      ffmpeg,
      upload,
      mkv: this.videoFormat ? new RawVideoMatroskaWriter(this.videoFormat.width, this.videoFormat.height) : undefined,
      videoStartMs: startMs,
      lastVideoMs: startMs - 1,
      audioSamples: 0,
      droppedFrames: 0,
      drained: Promise.resolve(),
    };
    if (piece.mkv) ffmpeg.pipe(this.pipes.video!).write(piece.mkv.header());
    piece.drained = this.drainOutput(piece);
    void ffmpeg.exited.then((exit) => {
      if (exit.code !== 0 && !piece.error) piece.error = describeExit(exit);
    });
    this.piece = piece;
    this.pieces.push({ piece, done: this.closed(piece) });
  }

  /** Hands the encoder's output to the upload in whole pieces, waiting when the upload is full. */
  private async drainOutput(piece: Piece): Promise<void> {
    const reader = this.tracks.video ? new Mp4SegmentReader() : new Mp3FrameReader();
    // The MP4 header alone is no recording: it goes out with the first fragment.
    let header: Buffer | undefined;
    try {
      for await (const chunk of piece.ffmpeg.pipe(this.pipes.output) as AsyncIterable<Buffer>) {
        const pieces = reader instanceof Mp4SegmentReader ? reader.push(chunk) : [{ kind: 'frames', bytes: reader.push(chunk).bytes }];
        for (const { kind, bytes } of pieces) {
          if (kind === 'init') {
            header = bytes;
            continue;
          }
          const whole = header ? Buffer.concat([header, bytes]) : bytes;
          header = undefined;
          if (!piece.upload.write(whole)) await piece.upload.room();
        }
      }
    } catch (error) {
      piece.error ??= `reading the encoder's output failed: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  /** A piece is done when its encoder exited, its output was handed over, and its upload ended. */
  private async closed(piece: Piece): Promise<RecordedPiece> {
    await Promise.all([piece.ffmpeg.exited, piece.drained]);
    const upload = await piece.upload.end().catch((error: unknown): GrowingObjectResult => {
      const message = error instanceof Error ? error.message : String(error);
      return { key: piece.upload.key, mode: 'append', storedBytes: 0, lostBytes: piece.upload.pendingBytes, spilledBytes: 0, objectExists: false, error: message };
    });
    const durationSec = this.videoFormat ? (piece.lastVideoMs - piece.videoStartMs + 1000 / this.fps) / 1000 : piece.audioSamples / this.audioFormat!.sampleRate;
    this.options.logger.info('recording piece closed', { anchor: this.options.userId, piece: piece.index, durationSec, bytes: upload.storedBytes });
    return { index: piece.index, startedAt: piece.startedAt, durationSec, droppedFrames: piece.droppedFrames, upload, ...(piece.error ? { error: piece.error } : {}) };
  }

  /**
   * Closes a piece's input; its encoder finishes and its upload completes on its own. The latest
   * picture is sent again at `endTick` (unless the anchor is away), so the piece covers its time
   * up to where the next one starts.
   */
  private closePiece(piece: Piece, endTick: number): void {
    if (piece.mkv && !this.away && this.msOfTick(endTick) > piece.lastVideoMs) this.writeVideoFrame(this.currentPicture(), endTick, piece);
    for (const fd of [this.pipes.video, this.pipes.audio]) if (fd !== undefined) piece.ffmpeg.pipe(fd).end();
    const backstop = setTimeout(() => void piece.ffmpeg.stop('requested'), ENCODER_FINISH_GRACE_MS);
    void piece.ffmpeg.exited.finally(() => clearTimeout(backstop));
  }

  private elapsedMs(): number {
    return this.now() - this.startedAt!;
  }

  /** Room time the recording has reached (ms): the next video tick, or the audio written. */
  private timelineMs(): number {
    return this.videoFormat ? this.msOfTick(this.lastTick + 1) : this.audioFormat ? (this.audioSamplesWritten * 1000) / this.audioFormat.sampleRate : 0;
  }

  private msOfTick(tick: number): number {
    return (tick * 1000) / this.fps;
  }

  private tick(): void {
    if (this.away || !this.piece) return;
    const elapsed = this.elapsedMs();
    if (this.videoFormat) {
      const tick = Math.floor((elapsed * this.fps) / 1000);
      if (tick > this.lastTick) {
        this.rotateIfDue(tick);
        // Behind: this picture is not sent; the one before lasts longer. Late timers skip ticks the same way.
        if (this.videoCongested()) {
          this.droppedFrames++;
          this.piece.droppedFrames++;
        } else {
          this.writeVideoFrame(this.currentPicture(), tick);
        }
        this.lastTick = tick;
      }
    }
    if (this.audioFormat) {
      const releasable = this.audioReleasableSamples();
      this.releaseAudio(releasable);
      // No audio for a while: silence, up to the clock (not past it, so cuts stay exact).
      if (this.samplesFor(elapsed - AUDIO_GAP_MS) > this.audioSamplesWritten && !this.audioCongested()) this.fillAudioTo(releasable);
      if (!this.videoFormat) this.rotateIfDue(undefined);
    }
  }

  /**
   * Starts a new piece when this one is long or large enough, before the picture of `tick`: the cut
   * falls between two frames (and the new encoder starts on a keyframe).
   */
  private rotateIfDue(tick: number | undefined): void {
    const piece = this.piece!;
    const pieceMs = tick !== undefined ? this.msOfTick(tick) - piece.videoStartMs : (piece.audioSamples * 1000) / this.audioFormat!.sampleRate;
    const tooLong = this.options.maxPieceMs !== undefined && pieceMs >= this.options.maxPieceMs;
    const tooLarge = this.options.maxPieceBytes !== undefined && piece.upload.totalBytes >= this.options.maxPieceBytes;
    if (!tooLong && !tooLarge) return;
    this.options.logger.info('starting a new piece', { anchor: this.options.userId, piece: piece.index + 1, reason: tooLong ? 'duration' : 'size' });
    if (tick !== undefined && this.audioFormat) {
      // The old piece's audio ends where its video does.
      this.fillAudioTo(this.samplesFor(this.msOfTick(tick)));
    }
    this.closePiece(piece, tick === undefined ? this.lastTick : tick - 1);
    this.openPiece(tick);
  }

  private videoCongested(): boolean {
    const { width, height } = this.videoFormat!;
    return this.piece!.ffmpeg.pipe(this.pipes.video!).writableLength > Math.max(VIDEO_BACKLOG_BYTES, 2 * i420Size(width, height));
  }

  private audioCongested(): boolean {
    const format = this.audioFormat!;
    return this.piece!.ffmpeg.pipe(this.pipes.audio!).writableLength > (format.sampleRate * format.channels * 2 * AUDIO_BACKLOG_MS) / 1000;
  }

  private currentPicture(): Buffer {
    const { width, height } = this.videoFormat!;
    const latest = this.latestPicture;
    if (!latest || this.now() - latest.at > FREEZE_LIMIT_MS) return (this.blackPicture ??= blackI420(width, height));
    const { frame } = latest;
    if (frame.width === width && frame.height === height) return frame.data;
    // Scaled once per new picture, then repeated by reference.
    const scaled = scaleI420(frame.data, frame.width, frame.height, width, height);
    this.latestPicture = { frame: { ...frame, data: scaled, width, height }, at: latest.at };
    return scaled;
  }

  private writeVideoFrame(picture: Buffer, tick: number, piece = this.piece!): void {
    const roomMs = this.msOfTick(tick);
    const input = piece.ffmpeg.pipe(this.pipes.video!);
    for (const part of piece.mkv!.frame(roomMs - piece.videoStartMs, picture)) input.write(part);
    piece.lastVideoMs = roomMs;
  }

  /**
   * Audio is held until the clock reaches it, so no piece's audio runs past its video: a cut
   * between pieces falls at the same instant for both. Held at most AUDIO_AHEAD_MS.
   */
  private writeAudio(frame: AudioFrame): void {
    const format = this.audioFormat!;
    if (this.audioCongested()) return; // its time is filled with silence once the encoder catches up
    const pcm = convertPcm(frame.data, frame, format);
    const heldSamples = this.heldAudio.reduce((sum, held) => sum + held.length, 0) / 2 / format.channels;
    if (this.audioSamplesWritten + heldSamples > this.samplesFor(this.elapsedMs() + AUDIO_AHEAD_MS)) return;
    this.heldAudio.push(pcm);
    this.releaseAudio(this.audioReleasableSamples());
  }

  /** Audio goes out up to the clock: with video, up to the next video tick, so a cut between ticks cuts both. */
  private audioReleasableSamples(): number {
    return this.samplesFor(this.videoFormat ? this.timelineMs() : this.elapsedMs());
  }

  /** Writes held audio until the recording's audio reaches `untilSamples`. */
  private releaseAudio(untilSamples: number): void {
    const frameBytes = this.audioFormat!.channels * 2;
    while (this.heldAudio.length > 0 && this.audioSamplesWritten < untilSamples) {
      const pcm = this.heldAudio[0]!;
      const room = (untilSamples - this.audioSamplesWritten) * frameBytes;
      const part = pcm.length <= room ? pcm : pcm.subarray(0, room);
      if (part === pcm) this.heldAudio.shift();
      else this.heldAudio[0] = pcm.subarray(room);
      this.pipe(this.pipes.audio!).write(part);
      const samples = part.length / frameBytes;
      this.audioSamplesWritten += samples;
      this.piece!.audioSamples += samples;
    }
  }

  /** The recording's audio up to `untilSamples`: held audio first, silence for the rest. */
  private fillAudioTo(untilSamples: number): void {
    this.releaseAudio(untilSamples);
    if (untilSamples > this.audioSamplesWritten) this.writeSilence(untilSamples - this.audioSamplesWritten);
  }

  private writeSilence(samples: number): void {
    const format = this.audioFormat!;
    const frameBytes = format.channels * 2;
    // One shared second of silence, written by reference: a long gap costs no memory.
    const second = (this.silence ??= Buffer.alloc(format.sampleRate * frameBytes));
    for (let left = samples; left > 0; left -= format.sampleRate) {
      this.pipe(this.pipes.audio!).write(left >= format.sampleRate ? second : second.subarray(0, left * frameBytes));
    }
    this.audioSamplesWritten += samples;
    this.piece!.audioSamples += samples;
  }

  private samplesFor(ms: number): number {
    return Math.max(0, Math.floor((ms * this.audioFormat!.sampleRate) / 1000));
  }

  private pipe(fd: number): Duplex {
    return this.piece!.ffmpeg.pipe(fd);
  }

  private async finish(): Promise<AnchorRecording> {
    clearTimeout(this.startTimer);
    if (!this.piece && this.startedAt !== undefined && !this.away) this.start(undefined);
    if (!this.piece) return { userId: this.options.userId, pieces: [], droppedFrames: 0, error: 'no media was received' };
    clearInterval(this.clock);
    this.tick();
    // The end: audio dropped while the encoder was behind becomes silence, so both tracks end together.
    if (this.audioFormat && !this.away) this.fillAudioTo(this.audioReleasableSamples());
    this.closePiece(this.piece, this.lastTick);
    const pieces = await Promise.all(this.pieces.map(({ done }) => done));
    await this.snapshotDir?.close();
    this.options.logger.info('anchor recording closed', { anchor: this.options.userId, pieces: pieces.length, droppedFrames: this.droppedFrames });
    return { userId: this.options.userId, pieces, droppedFrames: this.droppedFrames };
  }
}
