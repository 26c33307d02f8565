import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CALLBACK_DEADLINE_RESERVE_MS, deliverCallback, type CallbackOutcome } from '../callback';
import { MediaError } from '../errors';
import type { Logger } from '../log';
import { safeSegment, utcStamp } from '../naming';
import { imageFileProblem } from '../outputs/images/check';
import { CONTENT_TYPES } from '../outputs/images/format';
import { recordingContentType, recordingExtension, type RecordMode } from '../outputs/recording/encoder-args';
import { isSubscribed, type RoomContext, type RoomExitReason, type RoomListener, type RoomSource, type Subscription } from '../sources/room-source';
import { MAX_APPENDABLE_BYTES, type ObjectStore } from '../storage/types';
import { GrowingObjectUpload, spillBudget, type SpillBudget } from '../upload/growing-object';
import { ImageUploader, type ImageRecord } from '../upload/image-uploader';
import { claimWorkDir, reapDeadWorkDirs, releaseWorkDir, workDirEnv } from '../work-dirs';
import { AnchorRecorder, type AnchorRecording, type RecordedPiece } from './anchor-recorder';
import { recoverRecordings, SPILL_SUFFIX, UPLOAD_SUFFIX, type RecordRecoveryInfo } from './recovery';

export interface RecordJob {
  requestId: string;
  sdkAppId: number;
  roomId?: number;
  strRoomId?: string;
  /** The recorder's own user. */
  userId: string;
  userSig: string;
  mode: RecordMode;
  bucket: string;
  region: string;
  /** Normalised object-key prefix under the bucket: '' or ending in '/'. */
  keyPrefix: string;
  callbackUrl?: string;
  /** Leave when no anchor we record has been in the room for this long (MaxIdleTime). */
  maxIdleSec?: number;
  /** Whom to record (SubscribeUserIds / UnSubscribeUserIds). */
  subscription?: Subscription;
  /** Each anchor's recording is split into pieces of at most this long (MaxMediaFileDuration). */
  maxPieceSec?: number;
  /** A JPEG of each anchor every this many seconds while recording video (SnapshotInterval). */
  snapshotIntervalSec?: number;
}

export interface RecordRuntime {
  /** Called once, inside the job, so a room that cannot be had (no SDK) is reported like any failure. */
  openRoom: (context: RoomContext) => RoomSource;
  store: ObjectStore;
  /** A store for another bucket with the same credentials: finishes a killed invocation's uploads. */
  storeFor?: (target: { bucket: string; region: string }) => ObjectStore;
  ffmpegPath: string;
  logger: Logger;
  /** A private work dir is made below this and removed at the end. */
  workRoot: string;
  /** Epoch ms at which the platform kills the invocation. */
  deadlineAt?: number;
  /** Recording stops this long before the deadline, to store what is left and report. */
  finalizeMarginMs: number;
  signal?: AbortSignal;
  callbackSecret?: string;
  /** Local disk all spill files of the job may use, when storage fails (default 256 MiB). */
  spillLimitBytes?: number;
  videoFps?: number;
}

export type RecordStopReason = RoomExitReason | 'idle' | 'deadline' | 'terminated' | 'error';

export interface RecordedFile {
  UserId: string;
  /** The object's URL; empty when nothing of it could be stored. */
  RecordFile: string;
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
}

/** Storage failures are retried until this long before the deadline: the callback goes after. */
const STORE_GIVE_UP_BEFORE_DEADLINE_MS = 5_000;
/** Without a deadline (local runs), failing storage is given up this long after the room ends. */
const STORE_GIVE_UP_WITHOUT_DEADLINE_MS = 120_000;
const DEFAULT_SPILL_LIMIT_BYTES = 256 * 1024 * 1024;
/** Roll over to a new object before the clouds' 5 GB limit on appendable objects. */
const ROLLOVER_BYTES = Math.floor(MAX_APPENDABLE_BYTES * 0.9);
const RECOVERY_BUDGET_MS = 30_000;
/** A result's Message names at most this many anchors. */
const MAX_NAMED_ANCHORS = 10;

/**
 * Joins the room as an audience user and records each anchor (or those subscribed to) straight
 * into storage while the room lasts. When the room ends (dismissed, kicked, idle, deadline,
 * SIGTERM) each recording is closed — what is left is a few seconds — and the result reported.
 * Never throws for room, media or storage trouble.
 */
export async function runRecordJob(job: RecordJob, runtime: RecordRuntime): Promise<RecordResult> {
  const log = runtime.logger.child({ job: 'record' });
  await reapDeadWorkDirs<RecordRecoveryInfo>(runtime.workRoot, 'record', {
    logger: log,
    recover: runtime.storeFor ? (dead) => recoverRecordings(dead, runtime.storeFor!, log, Date.now() + RECOVERY_BUDGET_MS) : undefined,
  });
  const workDir = await claimWorkDir<RecordRecoveryInfo>(runtime.workRoot, 'record', job.requestId, { bucket: job.bucket, region: job.region });
  const recording = new RoomRecording(job, runtime, workDir, log);
  try {
    return await recording.run();
  } finally {
    // A spill file or a snapshot left by an upload that gave up is for the next invocation to store.
    await releaseWorkDir(workDir, recording.spilledBytes + recording.leftoverFiles);
  }
}

class RoomRecording {
  private readonly recorders = new Map<string, AnchorRecorder>();
  private readonly spill: SpillBudget;
  private stopReason: RecordStopReason | undefined;
  private roomClosed!: () => void;
  private readonly closed = new Promise<void>((resolve) => (this.roomClosed = resolve));
  private room: RoomSource | undefined;
  private roomEndedAt: number | undefined;
  private readonly snapshots = new Map<string, { records: ImageRecord[]; discarded: number }>();
  private readonly imageUploader: ImageUploader;
  /** Anchors we record that are in the room now. */
  private readonly present = new Set<string>();
  /** Every anchor seen in the room, recorded or not: to say why nothing was recorded. */
  private readonly seen = new Set<string>();
  private idleTimer: NodeJS.Timeout | undefined;
  /** Ends snapshot-upload retries shortly before the platform's kill. */
  private readonly flushAbort = new AbortController();
  /** Bytes and files left on the instance for the next invocation to store. */
  spilledBytes = 0;
  leftoverFiles = 0;

  constructor(
    private readonly job: RecordJob,
    private readonly runtime: RecordRuntime,
    private readonly workDir: string,
    private readonly log: Logger,
  ) {
    this.spill = spillBudget(runtime.spillLimitBytes ?? DEFAULT_SPILL_LIMIT_BYTES);
    this.imageUploader = new ImageUploader(runtime.store, { contentType: CONTENT_TYPES.jpg, concurrency: 2, logger: log, signal: this.flushAbort.signal });
  }

  async run(): Promise<RecordResult> {
    const timers = this.armStops();
    let failure: unknown;
    try {
      this.room = this.runtime.openRoom({ workDir: this.workDir, env: workDirEnv(this.workDir), logger: this.log });
      await this.room.enter(
        { sdkAppId: this.job.sdkAppId, userId: this.job.userId, userSig: this.job.userSig, roomId: this.job.roomId, strRoomId: this.job.strRoomId },
        this.listener(),
        this.job.subscription,
      );
      this.log.info('in the room; recording anchors');
      this.armIdle();
      await this.closed;
    } catch (error) {
      failure = error;
      this.stopReason ??= 'error';
      this.log.error('could not record the room', { error });
    } finally {
      timers.dispose();
      clearTimeout(this.idleTimer);
      this.roomEndedAt = Date.now();
    }
    // Whatever ended the room, each recording is closed and what is left of it stored.
    const flushTimer =
      this.runtime.deadlineAt === undefined ? undefined : setTimeout(() => this.flushAbort.abort(), Math.max(0, this.runtime.deadlineAt - STORE_GIVE_UP_BEFORE_DEADLINE_MS - Date.now()));
    try {
      const recordings = await Promise.all([...this.recorders.values()].map((recorder) => recorder.stop()));
      await this.storeSnapshots();
      return await this.report(recordings, failure);
    } finally {
      clearTimeout(flushTimer);
    }
  }

  private listener(): RoomListener {
    const recorderFor = (userId: string) => {
      if (!isSubscribed(this.job.subscription, userId)) return undefined;
      let recorder = this.recorders.get(userId);
      if (!recorder && !this.stopReason) {
        recorder = this.newRecorder(userId, this.recorders.size);
        this.recorders.set(userId, recorder);
      }
      return recorder;
    };
    return {
      anchorJoined: (userId) => {
        this.log.info('anchor joined', { anchor: userId, recorded: isSubscribed(this.job.subscription, userId) });
        this.seen.add(userId);
        if (!isSubscribed(this.job.subscription, userId)) return;
        this.present.add(userId);
        this.armIdle();
      },
      anchorLeft: (userId) => {
        this.log.info('anchor left', { anchor: userId });
        this.recorders.get(userId)?.anchorLeft();
        this.present.delete(userId);
        this.armIdle();
      },
      audioAvailable: (userId, available) => this.log.info('anchor audio', { anchor: userId, available }),
      videoAvailable: (userId, available) => this.log.info('anchor video', { anchor: userId, available }),
      audioFrame: (frame) => recorderFor(frame.userId)?.audioFrame(frame),
      videoFrame: (frame) => recorderFor(frame.userId)?.videoFrame(frame),
      exited: (reason) => {
        this.stopReason ??= reason;
        this.log.info('out of the room', { reason, stopReason: this.stopReason });
        this.roomClosed();
      },
      error: (code, message) => this.log.warn('room error', { code, message }),
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
      logger: this.log,
      env: workDirEnv(this.workDir),
      videoFps: this.runtime.videoFps,
      maxPieceMs: this.job.maxPieceSec === undefined ? undefined : this.job.maxPieceSec * 1000,
      maxPieceBytes: ROLLOVER_BYTES,
      openPiece: (piece, startedAt) => {
        // `{Path}{room}/{anchor}/{start}-{requestId}.{ext}`: grouped by room and anchor, sorted by
        // start, and two recordings of the same moment kept apart by the request id.
        const key = `${anchorPrefix}${utcStamp(startedAt)}-${safeSegment(this.job.requestId)}.${recordingExtension(this.job.mode)}`;
        return new GrowingObjectUpload({
          store: this.runtime.store,
          key,
          contentType: recordingContentType(this.job.mode),
          logger: this.log,
          giveUpAt: () => this.giveUpAt(),
          spill: {
            path: join(this.workDir, `a${index}-p${piece}${SPILL_SUFFIX}`),
            budget: this.spill,
            describe: { bucket: this.job.bucket, region: this.job.region },
          },
        });
      },
      snapshots:
        snapshotInterval === undefined
          ? undefined
          : { intervalSec: snapshotInterval, dir: join(this.workDir, `snapshots-a${index}`), onImage: (path, wallTimeMs) => this.takeSnapshot(userId, anchorPrefix, path, wallTimeMs) },
    });
  }

  /** Failed storage is retried until shortly before the deadline, or a while after the room ended. */
  private giveUpAt(): number {
    if (this.runtime.deadlineAt !== undefined) return this.runtime.deadlineAt - STORE_GIVE_UP_BEFORE_DEADLINE_MS;
    return this.roomEndedAt === undefined ? Infinity : this.roomEndedAt + STORE_GIVE_UP_WITHOUT_DEADLINE_MS;
  }

  private async takeSnapshot(userId: string, anchorPrefix: string, path: string, wallTimeMs: number): Promise<void> {
    const stats = this.snapshots.get(userId) ?? { records: [], discarded: 0 };
    this.snapshots.set(userId, stats);
    const { problem, bytes, modifiedAt } = await imageFileProblem('jpg', path);
    if (problem) {
      stats.discarded++;
      this.log.warn('incomplete snapshot discarded', { anchor: userId, problem });
      return;
    }
    const record: ImageRecord = {
      seq: stats.records.length,
      key: `${anchorPrefix}snapshots/${utcStamp(wallTimeMs, true)}.jpg`,
      streamTime: 0,
      run: 0,
      timeMs: wallTimeMs,
      writtenAt: modifiedAt,
      bytes,
      attempts: 0,
      status: 'pending',
    };
    stats.records.push(record);
    this.imageUploader.enqueue(record, path);
  }

  /**
   * Waits for the snapshot uploads, tries failed ones once more, and leaves any still failing on
   * the instance, described, for the next invocation to store.
   */
  private async storeSnapshots(): Promise<void> {
    await this.imageUploader.drain();
    if (this.imageUploader.failedFiles.length > 0 && !this.flushAbort.signal.aborted) await this.imageUploader.retryFailed();
    for (const { record, filePath } of this.imageUploader.failedFiles) {
      await writeFile(`${filePath}${UPLOAD_SUFFIX}`, JSON.stringify({ bucket: this.job.bucket, region: this.job.region, key: record.key, contentType: CONTENT_TYPES.jpg }));
      this.leftoverFiles++;
    }
  }

  /** MaxIdleTime: leave once no recorded anchor has been in the room for that long. */
  private armIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.job.maxIdleSec === undefined || this.present.size > 0 || this.stopReason) return;
    this.idleTimer = setTimeout(() => this.leave('idle'), this.job.maxIdleSec * 1000);
  }

  private leave(reason: RecordStopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.log.info('leaving the room', { reason });
    if (!this.room) return this.roomClosed();
    this.room.leave().catch((error) => {
      this.log.warn('leaving the room failed', { error });
      this.roomClosed();
    });
  }

  /** Our own reasons to leave: the deadline and SIGTERM. */
  private armStops(): { dispose(): void } {
    const handles: NodeJS.Timeout[] = [];
    if (this.runtime.deadlineAt !== undefined) {
      handles.push(setTimeout(() => this.leave('deadline'), Math.max(0, this.runtime.deadlineAt - this.runtime.finalizeMarginMs - Date.now())));
    }
    const onAbort = () => this.leave('terminated');
    if (this.runtime.signal?.aborted) onAbort();
    this.runtime.signal?.addEventListener('abort', onAbort, { once: true });
    return {
      dispose: () => {
        for (const handle of handles) clearTimeout(handle);
        this.runtime.signal?.removeEventListener('abort', onAbort);
      },
    };
  }

  private fileOf(recording: AnchorRecording, piece: RecordedPiece): RecordedFile {
    const { upload } = piece;
    const problems = [
      piece.error ? `the encoder failed: ${piece.error}` : undefined,
      upload.error ? `storing failed: ${upload.error}` : undefined,
      upload.spilledBytes > 0 ? `${upload.spilledBytes} bytes could not be stored yet; kept on the instance for the next invocation to store` : undefined,
      upload.lostBytes > 0 ? `${upload.lostBytes} bytes could not be stored and are lost` : undefined,
    ].filter((problem): problem is string => problem !== undefined);
    const stored = upload.objectExists && upload.lostBytes === 0 && upload.spilledBytes === 0 && !upload.error;
    const notes = [
      upload.mode === 'multipart' ? 'stored as a multipart upload (the bucket refuses appends)' : undefined,
      piece.droppedFrames > 0 ? `${piece.droppedFrames} frames not encoded because the encoder could not keep up (the picture before lasts longer)` : undefined,
    ].filter((note): note is string => note !== undefined);
    return {
      UserId: recording.userId,
      RecordFile: upload.objectExists ? this.runtime.store.objectUrl(upload.key) : '',
      Status: stored ? 1 : 0,
      Message: stored ? ['ok', ...notes].join('; ') : problems.join('; ') || 'nothing was stored',
      Duration: Number(piece.durationSec.toFixed(3)),
      Size: upload.storedBytes,
      StartTime: piece.startedAt,
      DroppedFrames: piece.droppedFrames,
    };
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
        files.push({ UserId: recording.userId, RecordFile: '', Status: 0, Message: `recording failed: ${recording.error ?? 'nothing was written'}`, Duration: 0, Size: 0, StartTime: 0, DroppedFrames: 0 });
      }
      for (const piece of recording.pieces) files.push(this.fileOf(recording, piece));
      this.spilledBytes += recording.pieces.reduce((sum, piece) => sum + piece.upload.spilledBytes, 0);
    }
    const result: RecordResult = {
      SdkAppId: this.job.sdkAppId,
      RoomId: this.job.roomId ?? null,
      UserId: this.job.userId,
      StrRoomId: this.job.strRoomId ?? null,
      Files: files,
      RequestId: this.job.requestId,
      StopReason: this.stopReason ?? 'error',
    };
    if (files.length === 0 && error === undefined) result.Message = this.nothingRecorded();
    if (this.job.snapshotIntervalSec !== undefined) {
      result.Snapshots = [...this.snapshots].map(([userId, { records, discarded }]) => {
        const stored = records.filter((record) => record.status === 'uploaded');
        return { UserId: userId, Count: stored.length, FirstKey: stored[0]?.key ?? null, LastKey: stored.at(-1)?.key ?? null, Discarded: discarded, Failed: records.length - stored.length };
      });
    }
    if (error !== undefined) {
      result.Error = { Code: error instanceof MediaError ? error.code : 'RecordingFailed', Message: error instanceof Error ? error.message : String(error) };
    }
    if (this.job.callbackUrl) {
      result.Callback = await deliverCallback(this.job.callbackUrl, result, {
        secret: this.runtime.callbackSecret,
        deadlineAt: this.runtime.deadlineAt === undefined ? undefined : this.runtime.deadlineAt - CALLBACK_DEADLINE_RESERVE_MS,
      });
    }
    return result;
  }
}
