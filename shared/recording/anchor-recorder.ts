import { realClock, type Clock, type ClockTimer } from '../clock';
import type { Logger } from '../log';
import { blackI420, convertPcm, scaleI420 } from '../media/raw-media';
import type { ImageDirectory } from '../outputs/images/image-files';
import { modeTracks, RECORDING_AUDIO, recordingPipes, type EncoderContainer, type RawAudioFormat, type RawVideoFormat, type RecordingPipes, type RecordMode } from '../outputs/recording/encoder-args';
import type { SegmentSinks } from '../outputs/recording/segment-pump';
import type { AudioFrame, VideoFrame } from '../sources/room-source';
import { EncodedPiece, pieceSnapshotPattern, watchPieceSnapshots, type RecordedPiece } from './encoded-piece';

export type { RecordedPiece } from './encoded-piece';

export interface AnchorRecorderOptions {
  userId: string;
  mode: RecordMode;
  /** What the encoder writes: fragmented MP4 (files and HLS) or MP3 (Mode 00 only). MP4 by default, MP3 without video. */
  container?: EncoderContainer;
  ffmpegPath: string;
  logger: Logger;
  /** ffmpeg's environment additions (the work dir it belongs to). */
  env?: Record<string, string>;
  videoFps?: number;
  /** Used when no video frame arrives within `videoWaitMs` (the camera is off). */
  fallbackVideoSize?: { width: number; height: number };
  videoWaitMs?: number;
  /**
   * The clock the timeline runs on (real time by default). A VirtualClock runs it faster than real
   * time, deterministically: it waits for the encoder to take each picture before moving on.
   */
  clock?: Clock;
  /** Monotonic ms; injectable for tests and benchmarks (with clockTickMs, to run faster than real time). The clock's by default. */
  now?: () => number;
  /** How often the clock looks at the time (ms of the clock); one frame interval by default. */
  clockTickMs?: number;
  /** Each piece of the recording is at most this long (ms of recording); unlimited when absent. */
  maxPieceMs?: number;
  /** A piece whose file reaches this many bytes is closed and a new one begun. */
  maxPieceBytes?: number;
  /** Opens the uploads a new piece goes to; `startedAt` is the wall time of its first frame. */
  openPiece: (index: number, startedAt: number) => SegmentSinks;
  /** Each piece once it is finished: its encoder ended and its upload is over. */
  onPieceClosed?: (piece: RecordedPiece) => void;
  /** JPEGs every `intervalSec` from the pictures being encoded, written under `dir`. */
  snapshots?: { intervalSec: number; dir: string; onImage: (path: string, wallTimeMs: number) => Promise<void> };
}

export interface AnchorRecording {
  userId: string;
  pieces: RecordedPiece[];
  /** Pictures not encoded because the encoder could not keep up (the one before lasts longer). */
  droppedFrames: number;
  /** Set when nothing could be recorded at all. */
  error?: string;
}

/** How the timeline treats media that comes late, early or not at all. */
const TIMING = {
  /** A late video frame is repeated this long, then the picture goes black. */
  freezeLimitMs: 1_000,
  /**
   * Audio further behind room time than this is a gap: filled with silence up to this far behind.
   * Audio that comes later than this (a stall in this process or the room process) is cut where
   * the silence went, so it is longer than the stalls of a loaded 2-core machine (cuts of 31–100 ms
   * per 32 s were seen with 120 ms), and short beside a piece or a fragment.
   */
  audioGapMs: 300,
  /** Audio further ahead than this (a burst after a stall) is dropped to keep sync. */
  audioAheadMs: 500,
  /**
   * Audio whose timestamp puts it further than this from the end of the audio so far is moved to
   * its time (see placeAudio); nearer, it just follows, so delivery jitter never cuts sound.
   */
  audioPlacementToleranceMs: 30,
  /** Drift within that tolerance which lasts this long is not jitter: it is corrected too, if over audioDriftFloorMs. */
  audioDriftWindowMs: 1_000,
  audioDriftFloorMs: 3,
  /** The clock's period without video. */
  audioTickMs: 20,
  /** Audio kept while waiting for the first picture: 10 s of TRTC's 20 ms frames. */
  pendingAudioFrames: 500,
  /**
   * After an anchor is back, its audio is queued rather than dropped while the encoder takes the
   * silence for the time away, for at most this long (about 1 MB of 48 kHz mono).
   */
  catchUpMs: 10_000,
} as const;

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
  private piece: EncodedPiece | undefined;
  private readonly pieces: EncodedPiece[] = [];
  private videoFormat: RawVideoFormat | undefined;
  private audioFormat: RawAudioFormat | undefined;
  private startedAt: number | undefined;
  private startedAtWall = 0;
  /** `at`: when it was taken, by its timestamp (see RoomTimeMap), in this.now()'s time. */
  private latestPicture: { frame: VideoFrame; at: number } | undefined;
  /** The picture before the latest: what a late tick shows when the latest came after its time. */
  private previousPicture: { frame: VideoFrame; at: number } | undefined;
  private blackPicture: Buffer | undefined;
  private silence: Buffer | undefined;
  /** The recording's timeline: the last video tick handled (frame index since the start), and audio samples written. */
  private lastTick = -1;
  private audioSamplesWritten = 0;
  private droppedFrames = 0;
  private pendingAudio: Array<{ frame: AudioFrame; arrivalMs: number }> = [];
  /** Each kind's own: the two may not share a clock. */
  private readonly pictureTimes = new RoomTimeMap();
  private readonly audioTimes = new RoomTimeMap();
  /**
   * Where pictures land against their time: a tick shows the picture of up to half a frame either
   * side of it (ms, a running mean, + when shown after its time). Audio goes as far off its time,
   * so what happened together is heard and seen together.
   */
  private pictureLagMs: number | undefined;
  private lastShownPicture: VideoFrame | undefined;
  /** Late audio is being cut until the audio so far ends where the next frame begins (see placeAudio). */
  private cuttingLateAudio = false;
  /** The least and the most drift (samples) seen since `sinceMs` (a timestamp), within the tolerance. */
  private driftWindow: { sinceMs: number; least: number; most: number } | undefined;
  /** Converted audio that arrived ahead of the clock (see writeAudio). */
  private heldAudio: Buffer[] = [];
  /** Samples of audio not written because the encoder was behind: silence in their place, before the audio after them. */
  private owedAudioSamples = 0;
  /** Until then (elapsed ms) audio is not dropped as congested: the encoder is taking the time away (see back()). */
  private catchUpUntilMs = -Infinity;
  private readonly timeSource: Clock;
  private clock: ClockTimer | undefined;
  private startTimer: ClockTimer | undefined;
  private removeIdleCheck: (() => void) | undefined;
  private stopping: Promise<AnchorRecording> | undefined;
  private snapshotDir: ImageDirectory | undefined;
  /** The anchor left the room: nothing is written until it is back. */
  private away = false;

  constructor(private readonly options: AnchorRecorderOptions) {
    this.tracks = modeTracks(options.mode);
    this.pipes = recordingPipes(this.tracks);
    this.fps = options.videoFps ?? 15;
    this.timeSource = options.clock ?? realClock;
    this.now = options.now ?? this.timeSource.now;
  }

  videoFrame(frame: VideoFrame): void {
    if (!this.tracks.video || this.stopping) return;
    this.back();
    this.markStart();
    this.previousPicture = this.latestPicture;
    const arrival = this.now();
    this.latestPicture = { frame, at: this.pictureTimes.place(frame.timestampMs, arrival) ?? arrival };
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
      this.pendingAudio.push({ frame, arrivalMs: this.elapsedMs() });
      // Bounded: only the wait for a first picture is ever buffered.
      if (this.pendingAudio.length > TIMING.pendingAudioFrames) this.pendingAudio.shift();
      if (!this.tracks.video) this.start(undefined);
      return;
    }
    this.writeAudio(frame, this.elapsedMs());
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

  /**
   * The anchor is back: the time away becomes black and silence, written at once. Pictures and
   * sound resume together at the tick nearest to now (as any picture is shown at the tick nearest
   * its arrival): what arrives together stays together.
   */
  private back(): void {
    if (!this.away) return;
    this.away = false;
    if (!this.piece) return;
    const elapsed = this.elapsedMs();
    if (this.videoFormat) {
      // Black from just after the anchor left: one picture then, and another just before it is
      // back, so the encoder has pictures up to here and takes the silence at once (it takes no
      // audio past its latest picture).
      const { width, height } = this.videoFormat;
      const black = (this.blackPicture ??= blackI420(width, height));
      const resumeTick = Math.round((elapsed * this.fps) / 1000);
      if (resumeTick > this.lastTick + 1) this.writeVideoFrame(black, this.lastTick + 1);
      if (resumeTick > this.lastTick + 2) this.writeVideoFrame(black, resumeTick - 1);
      this.lastTick = Math.max(this.lastTick, resumeTick - 1);
    }
    if (this.audioFormat) {
      // Audio that arrived ahead of the clock before leaving goes first, then silence for the time
      // away (audio not written before leaving, while the encoder was behind, is in it). Until the
      // encoder has taken it, the audio arriving now is queued, not dropped as congested.
      this.fillAudioTo(this.audioReleasableSamples());
      this.owedAudioSamples = 0;
      this.catchUpUntilMs = elapsed + TIMING.catchUpMs;
    }
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
      this.startTimer = this.timeSource.setTimeout(() => this.piece || this.start(undefined), this.options.videoWaitMs ?? 3_000);
    }
  }

  private start(firstPictureSize: { width: number; height: number } | undefined): void {
    this.timeSource.clearTimer(this.startTimer);
    const size = firstPictureSize ?? this.options.fallbackVideoSize ?? { width: 640, height: 360 };
    this.videoFormat = this.tracks.video ? { ...size, fps: this.fps } : undefined;
    const firstAudio = this.pendingAudio[0]?.frame;
    this.audioFormat = this.tracks.audio ? (firstAudio ? { sampleRate: firstAudio.sampleRate, channels: firstAudio.channels } : RECORDING_AUDIO) : undefined;
    if (this.options.snapshots && this.tracks.video) {
      const { dir, onImage } = this.options.snapshots;
      this.snapshotDir = watchPieceSnapshots(dir, (index) => this.pieces[index]?.startedAt, onImage, this.options.logger);
    }
    this.openPiece();
    if (this.videoFormat) {
      // The recording starts when the first media arrived, maybe audio before any picture, and the
      // video starts with it, so both stay aligned. A first picture that came within TIMING.freezeLimitMs
      // also stands for the moment before it (as a late one is held after it): the file opens on
      // the camera's picture, not black. A later one means the camera was off: black until it comes.
      const firstPictureSoon = this.latestPicture !== undefined && this.latestPicture.at - this.startedAt! <= TIMING.freezeLimitMs;
      this.writeVideoFrame(firstPictureSoon ? this.currentPicture() : (this.blackPicture ??= blackI420(this.videoFormat.width, this.videoFormat.height)), 0);
      this.lastTick = 0;
    }
    for (const { frame, arrivalMs } of this.pendingAudio.splice(0)) this.writeAudio(frame, arrivalMs);
    // A virtual clock moves on only once the current piece's encoder has taken what it was given.
    this.removeIdleCheck = this.timeSource.addIdleCheck(() => this.piece?.inputPending());
    this.clock = this.timeSource.setInterval(() => this.tick(), this.options.clockTickMs ?? (this.tracks.video ? 1000 / this.fps : TIMING.audioTickMs));
    this.tick();
  }

  /** A new piece (encoder + upload) whose time starts at video tick `startTick` (or where the audio is). */
  private openPiece(startTick?: number): void {
    const index = this.pieces.length;
    const startMs = startTick !== undefined ? this.msOfTick(startTick) : this.timelineMs();
    const startedAt = this.startedAtWall + startMs;
    const snapshots = this.options.snapshots;
    this.piece = new EncodedPiece({
      index,
      startedAt,
      startMs,
      video: this.videoFormat,
      audio: this.audioFormat,
      pipes: this.pipes,
      container: this.options.container ?? (this.tracks.video ? 'mp4' : 'mp3'),
      snapshots: snapshots && this.videoFormat ? { intervalSec: snapshots.intervalSec, outputPattern: pieceSnapshotPattern(snapshots.dir, index) } : undefined,
      ffmpegPath: this.options.ffmpegPath,
      env: this.options.env,
      uploads: this.options.openPiece(index, startedAt),
      logger: this.options.logger,
      anchor: this.options.userId,
    });
    this.pieces.push(this.piece);
    const onPieceClosed = this.options.onPieceClosed;
    if (onPieceClosed) void this.piece.done.then(onPieceClosed);
  }

  /**
   * Closes a piece's input; its encoder finishes and its upload completes on its own. The latest
   * picture is sent again at `endTick` (unless the anchor is away), so the piece covers its time
   * up to where the next one starts.
   */
  private closePiece(piece: EncodedPiece, endTick: number): void {
    if (piece.hasVideo && !this.away && this.msOfTick(endTick) > piece.lastVideoMs) this.writeVideoFrame(this.currentPicture(), endTick, piece);
    piece.close();
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
      // A tick is handled once half a frame has passed its time: its picture is the one that arrived
      // nearest to that time (see pictureForTick), so one arriving just after it is not left to the next.
      const tick = Math.floor((elapsed * this.fps) / 1000 - 0.5);
      if (tick > this.lastTick) {
        this.rotateIfDue(tick);
        // Behind: this picture is not sent; the one before lasts longer. Late timers skip ticks the same way.
        if (this.piece.videoCongested()) {
          this.droppedFrames++;
          this.piece.droppedFrames++;
        } else {
          this.writeVideoFrame(this.pictureForTick(tick), tick);
        }
        this.lastTick = tick;
      }
    }
    if (this.audioFormat) {
      const releasable = this.audioReleasableSamples();
      this.releaseAudio(releasable);
      // No audio for a while: silence, up to TIMING.audioGapMs behind the clock, so audio that was
      // only that late still finds its time free (a cut or the end fills up to the clock).
      const gapUntil = Math.min(releasable, this.samplesFor(elapsed - TIMING.audioGapMs));
      if (gapUntil > this.audioSamplesWritten && !this.piece!.audioCongested()) this.fillAudioTo(gapUntil);
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
    const tooLarge = this.options.maxPieceBytes !== undefined && piece.fileBytes >= this.options.maxPieceBytes;
    if (!tooLong && !tooLarge) return;
    this.options.logger.info('starting a new piece', { anchor: this.options.userId, piece: piece.index + 1, reason: tooLong ? 'duration' : 'size' });
    if (tick !== undefined && this.audioFormat) {
      // The old piece's audio ends where its video does.
      this.fillAudioTo(this.samplesFor(this.msOfTick(tick)));
    }
    this.closePiece(piece, tick === undefined ? this.lastTick : tick - 1);
    this.openPiece(tick);
  }


  /**
   * The picture a tick shows: the newest taken by half a frame after the tick's time (the tick is
   * handled no sooner, see tick()), by its timestamp, so one that came late still shows at its
   * time. A tick whose timer fires late must not show the picture of the next tick (it would put
   * every picture one frame early against the audio); one handled on time must not miss a picture
   * taken a moment after its time (one frame late). How far each new picture lands from its time
   * is kept in pictureLagMs, for the audio.
   */
  private pictureForTick(tick: number): Buffer {
    const tickAt = this.startedAt! + this.msOfTick(tick);
    const latest = this.latestPicture;
    const which = latest && latest.at > tickAt + 500 / this.fps && this.previousPicture ? 'previousPicture' : 'latestPicture';
    const shown = this[which];
    if (shown && shown.frame !== this.lastShownPicture && !this.frozenTooLong(shown)) {
      this.lastShownPicture = shown.frame;
      const lag = tickAt - shown.at;
      this.pictureLagMs = this.pictureLagMs === undefined ? lag : this.pictureLagMs + (lag - this.pictureLagMs) * 0.1;
    }
    return this.currentPicture(which);
  }

  private currentPicture(which: 'latestPicture' | 'previousPicture' = 'latestPicture'): Buffer {
    const { width, height } = this.videoFormat!;
    const chosen = this[which];
    if (!chosen || this.frozenTooLong(chosen)) return (this.blackPicture ??= blackI420(width, height));
    const { frame } = chosen;
    if (frame.width === width && frame.height === height) return frame.data;
    // Scaled once per new picture, then repeated by reference.
    const scaled = scaleI420(frame.data, frame.width, frame.height, width, height);
    this[which] = { frame: { ...frame, data: scaled, width, height }, at: chosen.at };
    return scaled;
  }

  /** A picture older than TIMING.freezeLimitMs is no longer shown: black instead. */
  private frozenTooLong(picture: { at: number }): boolean {
    return this.now() - picture.at > TIMING.freezeLimitMs;
  }

  private writeVideoFrame(picture: Buffer, tick: number, piece = this.piece!): void {
    piece.writePicture(picture, this.msOfTick(tick));
  }

  /**
   * Audio is held until the clock reaches it, so no piece's audio runs past its video: a cut
   * between pieces falls at the same instant for both. Held at most TIMING.audioAheadMs.
   */
  private writeAudio(frame: AudioFrame, arrivalMs: number): void {
    const format = this.audioFormat!;
    const frameBytes = format.channels * 2;
    const samples = Math.round((frame.data.length / 2 / frame.channels) * (format.sampleRate / frame.sampleRate));
    // All the audio taken so far, written or not: where this frame would go if it just followed.
    const audioEnd = this.audioSamplesWritten + this.heldAudioSamples() + this.owedAudioSamples;
    const { silenceBefore, late } = this.placeAudio(frame, samples, arrivalMs, audioEnd);
    this.piece!.lateAudioMs += (late * 1000) / format.sampleRate;
    const congested = this.piece!.audioCongested();
    if (!congested) this.catchUpUntilMs = -Infinity;
    if (congested && this.elapsedMs() >= this.catchUpUntilMs) {
      // Not written, but its time is kept: silence takes its place once the encoder catches up, so
      // the audio after it is not written early (a gap under TIMING.audioGapMs is never filled).
      this.owedAudioSamples += silenceBefore + samples - late;
      return;
    }
    if (this.owedAudioSamples + silenceBefore > 0) {
      this.heldAudio.push(...this.silenceParts(this.owedAudioSamples + silenceBefore));
      this.owedAudioSamples = 0;
    }
    if (late === samples) return;
    const pcm = convertPcm(frame.data, frame, format).subarray(late * frameBytes);
    // Owed audio and the silence before this frame are held by now: the end is as far as computed above.
    if (audioEnd + silenceBefore > this.samplesFor(this.elapsedMs() + TIMING.audioAheadMs)) return;
    this.heldAudio.push(pcm);
    this.releaseAudio(this.audioReleasableSamples());
  }

  /**
   * Where a frame's audio belongs, by its timestamp: right after the audio so far, unless that is
   * more than TIMING.audioPlacementToleranceMs from its time. Audio that comes late (a stalled
   * event loop or pipe, whose time the clock already filled with silence, or a burst after a
   * starved room process) loses its start, `late` samples; audio that resumes after a gap the
   * clock has not filled yet gets `silenceBefore` first. So a stall costs a moment of sound, never
   * the sync of everything after it.
   */
  private placeAudio(frame: AudioFrame, samples: number, arrivalMs: number, audioEnd: number): { silenceBefore: number; late: number } {
    const takenAt = this.audioTimes.place(frame.timestampMs, arrivalMs);
    // No usable timestamp: it follows the audio so far.
    if (takenAt === undefined) return { silenceBefore: 0, late: 0 };
    const belongsAt = takenAt + (this.pictureLagMs ?? 0);
    const drift = audioEnd - this.samplesFor(belongsAt);
    const tolerance = this.samplesFor(TIMING.audioPlacementToleranceMs);
    // Once cutting, all the way: a burst of late frames is cut until it is back on time, not to within the tolerance.
    if (drift > 0 && (drift > tolerance || this.cuttingLateAudio)) {
      if (!this.cuttingLateAudio) this.options.logger.warn('audio came late: cutting it so what follows stays in sync', { anchor: this.options.userId, ms: Math.round((drift * 1000) / this.audioFormat!.sampleRate) });
      this.cuttingLateAudio = drift > samples;
      this.driftWindow = undefined;
      return { silenceBefore: 0, late: Math.min(drift, samples) };
    }
    this.cuttingLateAudio = false;
    if (drift < -tolerance) {
      this.driftWindow = undefined;
      return { silenceBefore: -drift, late: 0 };
    }
    // Jitter moves the drift both ways; what stays on one side for a whole window is an offset (the
    // first frames came late, say), taken out by the part that never went away.
    const window = (this.driftWindow ??= { sinceMs: frame.timestampMs, least: drift, most: drift });
    window.least = Math.min(window.least, drift);
    window.most = Math.max(window.most, drift);
    if (frame.timestampMs - window.sinceMs < TIMING.audioDriftWindowMs) return { silenceBefore: 0, late: 0 };
    this.driftWindow = undefined;
    const floor = this.samplesFor(TIMING.audioDriftFloorMs);
    if (window.least > floor) return { silenceBefore: 0, late: Math.min(window.least, samples) };
    if (window.most < -floor) return { silenceBefore: -window.most, late: 0 };
    return { silenceBefore: 0, late: 0 };
  }

  private heldAudioSamples(): number {
    return this.heldAudio.reduce((sum, held) => sum + held.length, 0) / 2 / this.audioFormat!.channels;
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
      const samples = part.length / frameBytes;
      this.piece!.writeAudio(part, samples);
      this.audioSamplesWritten += samples;
    }
  }

  /** The recording's audio up to `untilSamples`: held audio first, silence for the rest. */
  private fillAudioTo(untilSamples: number): void {
    this.releaseAudio(untilSamples);
    if (untilSamples > this.audioSamplesWritten) {
      const gap = untilSamples - this.audioSamplesWritten;
      // The time of audio not written while the encoder was behind is in this gap: no longer owed.
      this.owedAudioSamples = Math.max(0, this.owedAudioSamples - gap);
      this.writeSilence(gap);
    }
  }

  private writeSilence(samples: number): void {
    const frameBytes = this.audioFormat!.channels * 2;
    for (const part of this.silenceParts(samples)) this.piece!.writeAudio(part, part.length / frameBytes);
    this.audioSamplesWritten += samples;
  }

  /** `samples` of silence, as parts of one shared second: by reference, so a long gap costs no memory. */
  private silenceParts(samples: number): Buffer[] {
    const format = this.audioFormat!;
    const frameBytes = format.channels * 2;
    const second = (this.silence ??= Buffer.alloc(format.sampleRate * frameBytes));
    const parts: Buffer[] = [];
    for (let left = samples; left > 0; left -= format.sampleRate) {
      const part = Math.min(left, format.sampleRate);
      parts.push(part === format.sampleRate ? second : second.subarray(0, part * frameBytes));
    }
    return parts;
  }

  private samplesFor(ms: number): number {
    return Math.max(0, Math.floor((ms * this.audioFormat!.sampleRate) / 1000));
  }

  private async finish(): Promise<AnchorRecording> {
    this.timeSource.clearTimer(this.startTimer);
    if (!this.piece && this.startedAt !== undefined && !this.away) this.start(undefined);
    if (!this.piece) return { userId: this.options.userId, pieces: [], droppedFrames: 0, error: 'no media was received' };
    this.timeSource.clearTimer(this.clock);
    this.removeIdleCheck?.();
    this.tick();
    // The end: audio dropped while the encoder was behind becomes silence, so both tracks end together.
    if (this.audioFormat && !this.away) this.fillAudioTo(this.audioReleasableSamples());
    this.closePiece(this.piece, this.lastTick);
    const pieces = await Promise.all(this.pieces.map((piece) => piece.done));
    await this.snapshotDir?.close();
    this.options.logger.info('anchor recording closed', { anchor: this.options.userId, pieces: pieces.length, droppedFrames: this.droppedFrames });
    return { userId: this.options.userId, pieces, droppedFrames: this.droppedFrames };
  }
}

/**
 * A source's timestamps (ms, its own clock) mapped to our clock: by the smallest delay seen, since
 * no frame arrives before it was taken, so frames that came late (a stalled pipe or event loop) are
 * still placed at their time. Timestamps that stand still or go back (a restarted sender, or none
 * at all) place nothing, and the map starts again from the next one that advances.
 */
export class RoomTimeMap {
  private offsetMs: number | undefined;
  private lastTimestampMs = -Infinity;

  /** When the frame was taken, in the time of `arrivalMs`; undefined when its timestamp cannot tell. */
  place(timestampMs: number, arrivalMs: number): number | undefined {
    if (timestampMs <= this.lastTimestampMs) {
      this.offsetMs = undefined;
      return undefined;
    }
    this.lastTimestampMs = timestampMs;
    this.offsetMs = Math.min(this.offsetMs ?? Infinity, arrivalMs - timestampMs);
    return timestampMs + this.offsetMs;
  }
}
