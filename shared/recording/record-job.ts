import { join } from 'node:path';
import type { CallbackOutcome } from '../callback';
import { outcomeOf } from '../errors';
import type { EventDeliveryReport, EventSender } from '../job/events';
import { runJob, type JobContext, type JobRuntime, type LifecycleStopReason } from '../job/lifecycle';
import { hlsKeys } from '../media/hls-playlist';
import { safeSegment, utcStamp } from '../naming';
import { ImageSink } from '../outputs/images/image-sink';
import { encoderContainer, formatOutputs, modeTracks, recordingContentType, type OutputFormat, type RecordMode } from '../outputs/recording/encoder-args';
import type { SegmentSinks } from '../outputs/recording/segment-pump';
import { isSubscribed, type RoomContext, type RoomExitReason, type RoomListener, type RoomSource, type Subscription } from '../sources/room-source';
import { MAX_APPENDABLE_BYTES } from '../storage/types';
import { GrowingObjectUpload, type GrowingObjectResult } from '../upload/growing-object';
import { HlsUpload, type HlsUploadResult } from '../upload/hls-upload';
import type { ImageRecord } from '../upload/image-uploader';
import { SPILL_SUFFIX, type StoreTarget } from '../upload/leftovers';
import { AnchorRecorder, type AnchorRecording, type RecordedPiece } from './anchor-recorder';

export interface RecordJob {
  requestId: string;
  sdkAppId: number;
  roomId?: number;
  strRoomId?: string;
  /** The recorder's own user. */
  userId: string;
  userSig: string;
  mode: RecordMode;
  /** mp4 or mp3 (one growing file), hls (CMAF segments and a playlist), or hls+mp4 (both from one encoding). */
  outputFormat: OutputFormat;
  bucket: string;
  region: string;
  /** Normalised object-key prefix under the bucket: '' or ending in '/'. */
  keyPrefix: string;
  callbackUrl?: string;
  /** Lifecycle events go here as they happen (EventCallback). */
  eventCallbackUrl?: string;
  /** Leave when no anchor we record has been in the room for this long (MaxIdleTime). */
  maxIdleSec?: number;
  /** Whom to record (SubscribeUserIds / UnSubscribeUserIds). */
  subscription?: Subscription;
  /** Each anchor's recording is split into pieces of at most this long (MaxMediaFileDuration). */
  maxPieceSec?: number;
  /** A JPEG of each anchor every this many seconds while recording video (SnapshotInterval). */
  snapshotIntervalSec?: number;
}

export interface RecordRuntime extends JobRuntime {
  /** Called once, inside the job, so a room that cannot be had (no SDK) is reported like any failure. */
  openRoom: (context: RoomContext) => RoomSource;
  videoFps?: number;
}

/** Stops the recording job decides itself (the room's reasons and the lifecycle's aside). */
type RecordOwnStopReason = RoomExitReason | 'idle' | 'error';
export type RecordStopReason = RecordOwnStopReason | LifecycleStopReason;

export interface RecordedFile {
  UserId: string;
  /** The object's URL (for HLS, the playlist's); empty when nothing of it could be stored. */
  RecordFile: string;
  /** What RecordFile is: an MP4 or MP3 file, or an HLS playlist. */
  Format: 'mp4' | 'mp3' | 'hls';
  /** HLS: segments the playlist lists. */
  Segments?: number;
  /** 1 success, 0 failure. */
  Status: 0 | 1;
  Message: string;
  /** Seconds of media. */
  Duration: number;
  /** Bytes stored. */
  Size: number;
  /** Wall time of the piece's first frame, Unix ms. */
  StartTime: number;
  /** Pictures not encoded because the encoder could not keep up (the one before lasts longer). */
  DroppedFrames: number;
  /** Audio that came too late for its time (after a stall), cut so what follows stays in sync, ms. */
  LateAudioMs: number;
}

export interface AnchorSnapshots {
  UserId: string;
  Count: number;
  FirstKey: string | null;
  LastKey: string | null;
  /** Images the encoder wrote that were not complete (never stored). */
  Discarded: number;
  Failed: number;
}

/** The contract's result, plus additive fields (RequestId, StopReason, Snapshots, Callback, Error). */
export interface RecordResult {
  SdkAppId: number;
  RoomId: number | null;
  UserId: string;
  StrRoomId: string | null;
  Files: RecordedFile[];
  /** Only when Files is empty (and no Error says why): why nothing was recorded. */
  Message?: string;
  RequestId: string;
  StopReason: RecordStopReason;
  Snapshots?: AnchorSnapshots[];
  Error?: { Code: string; Message: string };
  Callback?: CallbackOutcome;
  /** With EventCallback: lifecycle events delivered, and those that could not be. */
  Events?: EventDeliveryReport;
}

/** Roll over to a new object before the clouds' 5 GB limit on appendable objects. */
const ROLLOVER_BYTES = Math.floor(MAX_APPENDABLE_BYTES * 0.9);
/** A result's Message names at most this many anchors. */
const MAX_NAMED_ANCHORS = 10;

/** Written into the work dir's owner file (no credentials). */
type RecordRecoveryInfo = StoreTarget;

/**
 * Joins the room as an audience user and records each anchor (or those subscribed to) straight
 * into storage while the room lasts. When the room ends (dismissed, kicked, idle, deadline,
 * SIGTERM) each recording is closed — what is left is a few seconds — and the result reported.
 * Never throws for room, media or storage trouble.
 */

export function runRecordJob(job: RecordJob, runtime: RecordRuntime): Promise<RecordResult> {
  return runJob<RecordRecoveryInfo, RecordResult, RecordOwnStopReason>(runtime, {
    kind: 'record',
    requestId: job.requestId,
    recoveryInfo: { bucket: job.bucket, region: job.region },
    run: (context) => new RoomRecording(job, runtime, context).run(),
  });
}

class RoomRecording {
  private readonly recorders = new Map<string, AnchorRecorder>();
  private roomClosed!: () => void;
  private readonly closed = new Promise<void>((resolve) => (this.roomClosed = resolve));
  private room: RoomSource | undefined;
  private readonly snapshots = new Map<string, { sink: ImageSink<ImageRecord> }>();
  /** Anchors we record that are in the room now. */
  private readonly present = new Set<string>();
  /** Every anchor seen in the room, recorded or not: to say why nothing was recorded. */
  private readonly seen = new Set<string>();
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly events: EventSender | undefined;
  private readonly startedAnchors = new Set<string>();

  constructor(
    private readonly job: RecordJob,
    private readonly runtime: RecordRuntime,
    private readonly context: JobContext<RecordOwnStopReason>,
  ) {
    this.events = job.eventCallbackUrl ? context.eventSender(job.eventCallbackUrl, job.requestId) : undefined;
  }

  async run(): Promise<RecordResult> {
    this.context.armStops(() => this.leaveRoom());
    let failure: unknown;
    try {
      this.room = this.runtime.openRoom({ workDir: this.context.workDir, env: this.context.env, logger: this.context.log });
      await this.room.enter(
        { sdkAppId: this.job.sdkAppId, userId: this.job.userId, userSig: this.job.userSig, roomId: this.job.roomId, strRoomId: this.job.strRoomId },
        this.listener(),
        this.job.subscription,
      );
      this.context.log.info('in the room; recording anchors');
      this.events?.emit('RecordStarted', this.roomFields());
      this.armIdle();
      await this.closed;
    } catch (error) {
      failure = error;
      this.context.ended('error');
      this.context.log.error('could not record the room', { error });
    } finally {
      this.context.workEnded();
      clearTimeout(this.idleTimer);
    }
    // Whatever ended the room, each recording is closed and what is left of it stored.
    const recordings = await Promise.all([...this.recorders.values()].map((recorder) => recorder.stop()));
    await Promise.all([...this.snapshots.values()].map(({ sink }) => sink.finish()));
    return this.report(recordings, failure);
  }

  private listener(): RoomListener {
    const recorderFor = (userId: string) => {
      if (!isSubscribed(this.job.subscription, userId)) return undefined;
      let recorder = this.recorders.get(userId);
      if (!recorder && !this.context.stopReason) {
        recorder = this.newRecorder(userId, this.recorders.size);
        this.recorders.set(userId, recorder);
      }
      return recorder;
    };
    return {
      anchorJoined: (userId) => {
        this.context.log.info('anchor joined', { anchor: userId, recorded: isSubscribed(this.job.subscription, userId) });
        this.seen.add(userId);
        if (!isSubscribed(this.job.subscription, userId)) return;
        this.present.add(userId);
        this.armIdle();
      },
      anchorLeft: (userId) => {
        this.context.log.info('anchor left', { anchor: userId });
        this.recorders.get(userId)?.anchorLeft();
        this.present.delete(userId);
        this.armIdle();
      },
      audioAvailable: (userId, available) => this.context.log.info('anchor audio', { anchor: userId, available }),
      videoAvailable: (userId, available) => this.context.log.info('anchor video', { anchor: userId, available }),
      audioFrame: (frame) => recorderFor(frame.userId)?.audioFrame(frame),
      videoFrame: (frame) => recorderFor(frame.userId)?.videoFrame(frame),
      exited: (reason) => {
        this.context.ended(reason);
        this.context.log.info('out of the room', { reason, stopReason: this.context.stopReason });
        this.roomClosed();
      },
      error: (code, message) => this.context.log.warn('room error', { code, message }),
    };
  }

  private newRecorder(userId: string, index: number): AnchorRecorder {
    const room = this.job.roomId !== undefined ? String(this.job.roomId) : safeSegment(this.job.strRoomId ?? 'room');
    const anchorPrefix = `${this.job.keyPrefix}${room}/${safeSegment(userId)}/`;
    const snapshotInterval = this.job.snapshotIntervalSec;
    return new AnchorRecorder({
      userId,
      mode: this.job.mode,
      ffmpegPath: this.runtime.ffmpegPath,
      logger: this.context.log,
      env: this.context.env,
      videoFps: this.runtime.videoFps,
      maxPieceMs: this.job.maxPieceSec === undefined ? undefined : this.job.maxPieceSec * 1000,
      maxPieceBytes: ROLLOVER_BYTES,
      onPieceClosed: (piece) => {
        for (const file of this.filesOf(userId, piece)) this.events?.emit('FileClosed', { ...this.roomFields(), File: file });
      },
      container: encoderContainer(this.job.outputFormat),
      openPiece: (piece, startedAt) => this.openPieceUploads(userId, index, piece, `${anchorPrefix}${utcStamp(startedAt)}-${safeSegment(this.job.requestId)}`),
      snapshots:
        snapshotInterval === undefined
          ? undefined
          : { intervalSec: snapshotInterval, dir: join(this.context.workDir, `snapshots-a${index}`), onImage: (path, wallTimeMs) => this.takeSnapshot(userId, anchorPrefix, path, wallTimeMs) },
    });
  }

  /**
   * Where a piece goes: `{Path}{room}/{anchor}/{start}-{requestId}.{ext}` for a file and the folder
   * `…/{start}-{requestId}/` for HLS (index.m3u8, init.mp4, seg-NNNNNN.m4s): grouped by room and
   * anchor, sorted by start, and two recordings of the same moment kept apart by the request id.
   */
  private openPieceUploads(userId: string, anchorIndex: number, piece: number, keyBase: string): SegmentSinks {
    const outputs = formatOutputs(this.job.outputFormat);
    const hasVideo = modeTracks(this.job.mode).video;
    const common = { store: this.runtime.store, logger: this.context.log, giveUpAt: () => this.context.giveUpAt() };
    // The anchor's recording is in COS from here (its first piece: a later one is FileClosed's news).
    const started = (key: string) => (piece === 0 ? () => this.anchorStarted(userId, key) : undefined);
    const sinks: SegmentSinks = {};
    if (outputs.file) {
      const key = `${keyBase}.${outputs.file}`;
      sinks.file = new GrowingObjectUpload({
        ...common,
        key,
        contentType: recordingContentType(outputs.file, hasVideo),
        onFirstStored: started(key),
        spill: { path: join(this.context.workDir, `a${anchorIndex}-p${piece}${SPILL_SUFFIX}`), budget: this.context.spill, target: this.job },
      });
    }
    if (outputs.hls) {
      const dirKey = `${keyBase}/`;
      sinks.hls = new HlsUpload({
        ...common,
        dirKey,
        contentType: recordingContentType('mp4', hasVideo),
        onFirstStored: started(hlsKeys(dirKey).playlist),
        spill: { dir: join(this.context.workDir, `a${anchorIndex}-p${piece}-hls`), budget: this.context.spill, target: this.job },
      });
    }
    return sinks;
  }

  /** AnchorStarted, once per anchor: for hls+mp4, whichever output is in COS first. */
  private anchorStarted(userId: string, key: string): void {
    if (this.startedAnchors.has(userId)) return;
    this.startedAnchors.add(userId);
    this.events?.emit('AnchorStarted', { ...this.roomFields(), AnchorId: userId, Key: key, RecordFile: this.runtime.store.objectUrl(key) });
  }

  private async takeSnapshot(userId: string, anchorPrefix: string, path: string, wallTimeMs: number): Promise<void> {
    let entry = this.snapshots.get(userId);
    if (!entry) {
      entry = { sink: new ImageSink({ store: this.runtime.store, target: this.job, context: this.context, format: 'jpg', concurrency: 2 }) };
      this.snapshots.set(userId, entry);
    }
    const outcome = await entry.sink.take(path, (facts) => ({ ...facts, key: `${anchorPrefix}snapshots/${utcStamp(wallTimeMs, true)}.jpg`, timeMs: wallTimeMs }));
    if ('problem' in outcome) this.context.log.warn('incomplete snapshot discarded', { anchor: userId, problem: outcome.problem });
  }

  /** MaxIdleTime: leave once no recorded anchor has been in the room for that long. */
  private armIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.job.maxIdleSec === undefined || this.present.size > 0 || this.context.stopReason) return;
    this.idleTimer = setTimeout(() => this.context.stop('idle'), this.job.maxIdleSec * 1000);
  }

  /** Runs once, for the first reason to stop (JobContext.stop). */
  private leaveRoom(): void {
    if (!this.room) return this.roomClosed();
    this.room.leave().catch((error) => {
      this.context.log.warn('leaving the room failed', { error });
      this.roomClosed();
    });
  }

  /** A piece's entries in Files: its file, its HLS playlist, or both. */
  private filesOf(userId: string, piece: RecordedPiece): RecordedFile[] {
    const notes = [
      ...(piece.droppedFrames > 0 ? [`${piece.droppedFrames} frames not encoded because the encoder could not keep up (the picture before lasts longer)`] : []),
      ...(piece.lateAudioMs > 0 ? [`${piece.lateAudioMs} ms of audio came too late for its time and was cut (silence there), so what follows stays in sync`] : []),
    ];
    const encoderProblem = piece.error ? [`the encoder failed: ${piece.error}`] : [];
    const entry = (format: RecordedFile['Format'], key: string, exists: boolean, stored: boolean, problems: string[], size: number, note?: string): RecordedFile => ({
      UserId: userId,
      RecordFile: exists ? this.runtime.store.objectUrl(key) : '',
      Format: format,
      Status: stored ? 1 : 0,
      Message: stored ? ['ok', ...(note ? [note] : []), ...notes].join('; ') : [...encoderProblem, ...problems].join('; ') || 'nothing was stored',
      Duration: Number(piece.durationSec.toFixed(3)),
      Size: size,
      StartTime: piece.startedAt,
      DroppedFrames: piece.droppedFrames,
      LateAudioMs: piece.lateAudioMs,
    });
    const files: RecordedFile[] = [];
    if (piece.upload) {
      const upload = piece.upload;
      const problems = fileProblems(upload);
      const format = encoderContainer(this.job.outputFormat);
      const note = upload.mode === 'multipart' ? 'stored as a multipart upload (the bucket refuses appends)' : undefined;
      files.push(entry(format, upload.key, upload.objectExists, upload.objectExists && problems.length === 0 && !piece.error, problems, upload.storedBytes, note));
    }
    if (piece.hls) {
      const hls = piece.hls;
      const problems = playlistProblems(hls);
      const file = entry('hls', hls.playlistKey, hls.segments > 0, hls.segments > 0 && problems.length === 0 && !piece.error, problems, hls.storedBytes);
      file.Segments = hls.segments;
      // Until it is complete, the playlist's own length says what can be played.
      if (file.Status === 0) file.Duration = Number(hls.durationSec.toFixed(3));
      files.push(file);
    }
    return files;
  }

  /** Why Files is empty: nobody came, nobody subscribed to came, or those who came sent nothing to record. */
  private nothingRecorded(): string {
    const names = (ids: readonly string[]) => (ids.length <= MAX_NAMED_ANCHORS ? ids.join(', ') : `${ids.slice(0, MAX_NAMED_ANCHORS).join(', ')} and ${ids.length - MAX_NAMED_ANCHORS} more`);
    const seen = [...this.seen];
    if (seen.length === 0) return 'nothing was recorded: no anchor was in the room while the recorder was';
    const recordable = seen.filter((userId) => isSubscribed(this.job.subscription, userId));
    const { allow, deny } = this.job.subscription ?? {};
    if (recordable.length === 0 && allow) return `nothing was recorded: no anchor in the room (${names(seen)}) is in SubscribeUserIds (${names(allow)})`;
    if (recordable.length === 0 && deny) return `nothing was recorded: every anchor in the room (${names(seen)}) is in UnSubscribeUserIds`;
    const media = this.job.mode === '00' ? 'audio' : this.job.mode === '01' ? 'video' : 'audio or video';
    return `nothing was recorded: ${names(recordable)} sent no ${media}`;
  }

  private async report(recordings: AnchorRecording[], error?: unknown): Promise<RecordResult> {
    const files: RecordedFile[] = [];
    for (const recording of recordings) {
      if (recording.pieces.length === 0) {
        const message = `recording failed: ${recording.error ?? 'nothing was written'}`;
        // As filesOf lists a piece's entries: the file, then the playlist.
        const { file, hls } = formatOutputs(this.job.outputFormat);
        const formats: Array<RecordedFile['Format']> = [...(file ? [file] : []), ...(hls ? (['hls'] as const) : [])];
        for (const format of formats) files.push({ UserId: recording.userId, RecordFile: '', Format: format, Status: 0, Message: message, Duration: 0, Size: 0, StartTime: 0, DroppedFrames: 0, LateAudioMs: 0 });
      }
      for (const piece of recording.pieces) files.push(...this.filesOf(recording.userId, piece));
      // A spill file not stored yet, or a playlist not ended, is for the next invocation.
      this.context.leftovers += recording.pieces.filter((piece) => (piece.upload?.spilledBytes ?? 0) > 0 || (piece.hls && !piece.hls.ended && (piece.hls.segments > 0 || piece.hls.heldSegments > 0))).length;
    }
    const result: RecordResult = {
      SdkAppId: this.job.sdkAppId,
      RoomId: this.job.roomId ?? null,
      UserId: this.job.userId,
      StrRoomId: this.job.strRoomId ?? null,
      Files: files,
      RequestId: this.job.requestId,
      StopReason: this.context.stopReason ?? 'error',
    };
    if (files.length === 0 && error === undefined) result.Message = this.nothingRecorded();
    if (this.job.snapshotIntervalSec !== undefined) {
      result.Snapshots = [...this.snapshots].map(([userId, { sink }]) => {
        const stored = sink.records.filter((record) => record.status === 'uploaded');
        return { UserId: userId, Count: stored.length, FirstKey: stored[0]?.key ?? null, LastKey: stored.at(-1)?.key ?? null, Discarded: sink.discarded, Failed: sink.records.length - stored.length };
      });
    }
    if (error !== undefined) {
      const outcome = outcomeOf(error, 'RecordingFailed');
      result.Error = { Code: outcome.code, Message: outcome.message };
    }
    // The final result goes to both at once; RecordStopped is the last event either way.
    const [callback, events] = await Promise.all([
      this.job.callbackUrl ? this.context.sendCallback(this.job.callbackUrl, result) : undefined,
      this.events?.close('RecordStopped', { ...this.roomFields(), Result: result }),
    ]);
    if (callback) result.Callback = callback;
    if (events) result.Events = events;
    return result;
  }

  /** What every event says of the room: the contract's identifiers. */
  private roomFields(): Record<string, unknown> {
    return { SdkAppId: this.job.sdkAppId, RoomId: this.job.roomId ?? null, StrRoomId: this.job.strRoomId ?? null, UserId: this.job.userId };
  }
}

function fileProblems(upload: GrowingObjectResult): string[] {
  return [
    upload.error ? `storing failed: ${upload.error}` : undefined,
    upload.spilledBytes > 0 ? `${upload.spilledBytes} bytes could not be stored yet; kept on the instance for the next invocation to store` : undefined,
    upload.lostBytes > 0 ? `${upload.lostBytes} bytes could not be stored and are lost` : undefined,
  ].filter((problem): problem is string => problem !== undefined);
}

function playlistProblems(hls: HlsUploadResult): string[] {
  return [
    hls.error ? `storing failed: ${hls.error}` : undefined,
    hls.heldSegments > 0 ? `${hls.heldSegments} segments could not be stored yet; kept on the instance for the next invocation to store and list` : undefined,
    hls.lostSegments > 0 ? `${hls.lostSegments} segments could not be stored and are lost (the playlist ends before them)` : undefined,
    hls.segments > 0 && !hls.ended ? 'the playlist is not ended yet (no EXT-X-ENDLIST); the next invocation ends it' : undefined,
  ].filter((problem): problem is string => problem !== undefined);
}
