import { mkdir, mkdtemp, readdir, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { deliverCallback, type CallbackOutcome } from '../callback';
import { MediaError } from '../errors';
import type { Logger } from '../log';
import { safeSegment, utcStamp } from '../naming';
import type { ObjectStore } from '../storage/types';
import { AnchorRecorder, type AnchorRecording } from './anchor-recorder';
import { recordingExtension, type RecordMode } from './args';
import { finalizeRecording } from './finalize';
import type { RoomExitReason, RoomListener, RoomSource } from '../sources/room-source';

export interface RecordJob {
  requestId: string;
  sdkAppId: number;
  roomId?: number;
  strRoomId?: string;
  /** The recorder's own user. */
  userId: string;
  userSig: string;
  mode: RecordMode;
  /** Normalised object-key prefix under the bucket: '' or ending in '/'. */
  keyPrefix: string;
  callbackUrl?: string;
}

export interface RecordRuntime {
  /** Called once, inside the job, so a room that cannot be had (no SDK) is reported like any failure. */
  openRoom: () => RoomSource;
  store: ObjectStore;
  ffmpegPath: string;
  logger: Logger;
  /** A private work dir is made below this (CFS_PATH, or /tmp) and removed at the end. */
  workRoot: string;
  /** Epoch ms at which the platform kills the invocation. */
  deadlineAt?: number;
  /** Recording stops this long before the deadline, to finalise and upload. */
  finalizeMarginMs: number;
  signal?: AbortSignal;
  callbackSecret?: string;
  /** Bytes the work dir may use in all (SCF's /tmp is 512 MB), on top of what the disk has free. */
  diskBudgetBytes?: number;
  /** Recording stops while at least this much room is left. */
  diskReserveBytes: number;
  videoFps?: number;
}

export type RecordStopReason = RoomExitReason | 'deadline' | 'terminated' | 'disk_full' | 'error';

export interface RecordedFile {
  UserId: string;
  RecordFile: string;
  /** 1 success, 0 failure. */
  Status: 0 | 1;
  Message: string;
  Duration: number;
  Size: number;
}

/** The contract's result, plus additive fields (RequestId, StopReason, Callback, Error). */
export interface RecordResult {
  SdkAppId: number;
  RoomId: number | null;
  UserId: string;
  StrRoomId: string | null;
  Files: RecordedFile[];
  RequestId: string;
  StopReason: RecordStopReason;
  Error?: { Code: string; Message: string };
  Callback?: CallbackOutcome;
}

const DISK_CHECK_MS = 1_000;

/**
 * Joins the room as an audience user, records each anchor to its own FLV, and when the
 * room ends (dismissed, kicked, deadline, SIGTERM, disk nearly full) finalises each to
 * MP3/MP4, uploads it, and reports. Never throws for room, media or storage trouble.
 */
export async function runRecordJob(job: RecordJob, runtime: RecordRuntime): Promise<RecordResult> {
  await mkdir(runtime.workRoot, { recursive: true });
  const workDir = await mkdtemp(join(runtime.workRoot, `record-${safeSegment(job.requestId).slice(0, 40)}-`));
  try {
    return await new RoomRecording(job, runtime, workDir).run();
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

class RoomRecording {
  private readonly recorders = new Map<string, AnchorRecorder>();
  private readonly log: Logger;
  private stopReason: RecordStopReason | undefined;
  private roomClosed!: () => void;
  private readonly closed = new Promise<void>((resolve) => (this.roomClosed = resolve));
  private readonly startedAt = Date.now();
  private room: RoomSource | undefined;

  constructor(
    private readonly job: RecordJob,
    private readonly runtime: RecordRuntime,
    private readonly workDir: string,
  ) {
    this.log = runtime.logger.child({ job: 'record' });
  }

  async run(): Promise<RecordResult> {
    const timers = this.armStops();
    let failure: unknown;
    try {
      this.room = this.runtime.openRoom();
      await this.room.enter(
        { sdkAppId: this.job.sdkAppId, userId: this.job.userId, userSig: this.job.userSig, roomId: this.job.roomId, strRoomId: this.job.strRoomId },
        this.listener(),
      );
      this.log.info('in the room; recording anchors');
      await this.closed;
    } catch (error) {
      failure = error;
      this.stopReason ??= 'error';
      this.log.error('could not record the room', { error });
    } finally {
      timers.dispose();
    }
    // Whatever ended the room, what was captured is finalised and stored.
    const recordings = await this.stopRecorders();
    return this.report(await this.finalizeAll(recordings), failure);
  }

  private listener(): RoomListener {
    const recorderFor = (userId: string) => {
      let recorder = this.recorders.get(userId);
      if (!recorder && !this.stopReason) {
        recorder = new AnchorRecorder({
          userId,
          mode: this.job.mode,
          ffmpegPath: this.runtime.ffmpegPath,
          outputPath: join(this.workDir, `${safeSegment(userId)}.flv`),
          logger: this.log,
          videoFps: this.runtime.videoFps,
        });
        this.recorders.set(userId, recorder);
      }
      return recorder;
    };
    return {
      anchorJoined: (userId) => this.log.info('anchor joined', { anchor: userId }),
      anchorLeft: (userId) => {
        this.log.info('anchor left', { anchor: userId });
        this.recorders.get(userId)?.anchorLeft();
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

  /** Our own reasons to leave: the deadline, SIGTERM, and the disk filling up. */
  private armStops(): { dispose(): void } {
    const leave = (reason: RecordStopReason) => {
      if (this.stopReason) return;
      this.stopReason = reason;
      this.log.info('leaving the room', { reason });
      if (!this.room) return this.roomClosed();
      this.room.leave().catch((error) => {
        this.log.warn('leaving the room failed', { error });
        this.roomClosed();
      });
    };
    const handles: NodeJS.Timeout[] = [];
    if (this.runtime.deadlineAt !== undefined) {
      handles.push(setTimeout(() => leave('deadline'), Math.max(0, this.runtime.deadlineAt - this.runtime.finalizeMarginMs - Date.now())));
    }
    const diskCheck = setInterval(() => {
      void this.freeBytes().then((free) => free < this.runtime.diskReserveBytes && leave('disk_full'));
    }, DISK_CHECK_MS);
    const onAbort = () => leave('terminated');
    if (this.runtime.signal?.aborted) onAbort();
    this.runtime.signal?.addEventListener('abort', onAbort, { once: true });
    return {
      dispose: () => {
        for (const handle of handles) clearTimeout(handle);
        clearInterval(diskCheck);
        this.runtime.signal?.removeEventListener('abort', onAbort);
      },
    };
  }

  /** Free bytes for the work dir: what the file system has, capped by the budget. */
  private async freeBytes(): Promise<number> {
    const fsStats = await statfs(this.workDir);
    const onDisk = fsStats.bavail * fsStats.bsize;
    if (this.runtime.diskBudgetBytes === undefined) return onDisk;
    let used = 0;
    for (const name of await readdir(this.workDir)) used += (await stat(join(this.workDir, name)).catch(() => ({ size: 0 }))).size;
    return Math.min(onDisk, this.runtime.diskBudgetBytes - used);
  }

  private async stopRecorders(): Promise<AnchorRecording[]> {
    return Promise.all([...this.recorders.values()].map((recorder) => recorder.stop()));
  }

  /** One at a time, so at most one anchor's output is being written beside the FLVs. */
  private async finalizeAll(recordings: AnchorRecording[]): Promise<RecordedFile[]> {
    const files: RecordedFile[] = [];
    for (const recording of recordings) files.push(await this.finalizeOne(recording));
    return files;
  }

  private async finalizeOne(recording: AnchorRecording): Promise<RecordedFile> {
    const key = this.objectKey(recording.userId);
    const file: RecordedFile = {
      UserId: recording.userId,
      RecordFile: this.runtime.store.objectUrl(key),
      Status: 0,
      Message: '',
      Duration: Number(recording.durationSec.toFixed(3)),
      Size: 0,
    };
    const flvExists = await stat(recording.path).then((s) => s.size > 0, () => false);
    if (!flvExists) return { ...file, Message: `recording failed: ${recording.error ?? 'nothing was written'}` };
    const outcome = await finalizeRecording({
      flvPath: recording.path,
      mode: this.job.mode,
      key,
      store: this.runtime.store,
      ffmpegPath: this.runtime.ffmpegPath,
      freeBytes: () => this.freeBytes(),
    });
    if (outcome.failedStep) return { ...file, Size: outcome.bytes ?? 0, Message: `${outcome.failedStep} failed: ${outcome.error}` };
    const notes = [
      recording.error ? `recording ended early: ${recording.error}` : undefined,
      this.stopReason === 'disk_full' ? 'recording stopped early because the disk was nearly full' : undefined,
    ].filter(Boolean);
    this.log.info('recording stored', { anchor: recording.userId, key, method: outcome.method, bytes: outcome.bytes });
    return { ...file, Status: 1, Size: outcome.bytes ?? 0, Message: notes.length ? `ok; ${notes.join('; ')}` : 'ok' };
  }

  /**
   * `{Path}{room}/{anchor}/{start}-{requestId}.{ext}`: the room and anchor group files,
   * the start time sorts them, and the request id keeps two recordings apart.
   */
  private objectKey(anchorUserId: string): string {
    const room = this.job.roomId !== undefined ? String(this.job.roomId) : safeSegment(this.job.strRoomId ?? 'room');
    const start = utcStamp(this.startedAt);
    return `${this.job.keyPrefix}${room}/${safeSegment(anchorUserId)}/${start}-${safeSegment(this.job.requestId)}.${recordingExtension(this.job.mode)}`;
  }

  private async report(files: RecordedFile[], error?: unknown): Promise<RecordResult> {
    const result: RecordResult = {
      SdkAppId: this.job.sdkAppId,
      RoomId: this.job.roomId ?? null,
      UserId: this.job.userId,
      StrRoomId: this.job.strRoomId ?? null,
      Files: files,
      RequestId: this.job.requestId,
      StopReason: this.stopReason ?? 'error',
    };
    if (error !== undefined) {
      result.Error = { Code: error instanceof MediaError ? error.code : 'RecordingFailed', Message: error instanceof Error ? error.message : String(error) };
    }
    if (this.job.callbackUrl) result.Callback = await deliverCallback(this.job.callbackUrl, result, { secret: this.runtime.callbackSecret });
    return result;
  }
}
