import { appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CALLBACK_DEADLINE_RESERVE_MS, deliverCallback, type CallbackOutcome } from '../callback';
import type { Logger } from '../log';
import type { FlvTag, VideoTagInfo } from '../media/flv';
import { metadataResolutionProblem } from '../network-guard';
import { redactUrls } from '../redact';
import { sleep } from '../retry';
import { describeSourceFailure, StreamPull, type StreamPullExit } from '../sources/stream-pull';
import { imageFileProblem } from '../outputs/images/check';
import { CONTENT_TYPES, type ImageFormat } from '../outputs/images/format';
import { ImageDirectory } from '../outputs/images/image-files';
import { ImageUploader, type ImageRecord } from '../upload/image-uploader';
import { AppendJournal } from '../upload/journal';
import type { ObjectStore } from '../storage/types';
import { claimWorkDir, reapDeadWorkDirs, releaseWorkDir, workDirEnv } from '../work-dirs';
import { KeyframeSelector, parseSnapshotFileName, snapshotSlot, type DecodeMode } from './args';
import { Imager } from './imager';
import { journalKey, KeyClock, latestKey, manifestKey, snapshotKey } from './keys';
import { recoverSnapshots, RUNS_FILE, type SnapshotRecoveryInfo } from './recovery';

/** Everything the user asked for, validated and typed. */
export interface SnapshotJob {
  requestId: string;
  sourceUrl: string;
  bucket: string;
  region: string;
  /** Normalised: '' or ending in '/'. */
  prefix: string;
  intervalSec: number;
  format: ImageFormat;
  width?: number;
  quality?: number;
  maxSnapshots?: number;
  maxDurationSec?: number;
  idleTimeoutSec: number;
  connectTimeoutSec: number;
  latest: boolean;
  callbackUrl?: string;
}

/** What the platform provides for one invocation; the core reads nothing else. */
export interface SnapshotRuntime {
  store: ObjectStore;
  /**
   * A store for another bucket of the same cloud and credentials: used to finish the uploads of
   * an invocation that was killed on this instance. Without it, such leftovers are only removed.
   */
  storeFor?: (target: { bucket: string; region: string }) => ObjectStore;
  ffmpegPath: string;
  logger: Logger;
  /** A private work dir is created below this and removed at the end. */
  tmpRoot: string;
  /** Epoch ms at which the platform will kill the invocation. */
  deadlineAt?: number;
  /** Capture stops this long before the deadline so uploads can flush. */
  flushMarginMs: number;
  /** Aborted on SIGTERM: stop capturing, flush, report. */
  signal?: AbortSignal;
  callbackSecret?: string;
  uploadConcurrency?: number;
  onProgress?: (progress: SnapshotCounts & { elapsedMs: number }) => void;
}

export type StopReason = 'ended' | 'idle' | 'max_duration' | 'max_snapshots' | 'deadline' | 'terminated' | 'error';

export interface SnapshotCounts {
  /** Complete images handed to the uploader. */
  taken: number;
  uploaded: number;
  failed: number;
  /** Images ffmpeg wrote that were not complete (never stored). */
  discarded: number;
  /** Frames not decoded because the imager could not keep up (load shed). */
  shed: number;
}

export interface DiscardedImage {
  run: number;
  stream_time: number;
  reason: string;
}

export interface SnapshotResult {
  request_id: string;
  status: 'ok' | 'partial' | 'error';
  stop_reason: StopReason;
  source: string;
  bucket: string;
  region: string;
  prefix: string;
  decode: DecodeMode;
  counts: SnapshotCounts;
  failed_keys: string[];
  /** The first of the discarded images, with why (all of them are counted). */
  discarded: DiscardedImage[];
  first_key: string | null;
  last_key: string | null;
  manifest_key: string | null;
  /** The JSON Lines journal kept current while capturing (null when the bucket refuses appends). */
  journal_key: string | null;
  started_at: string;
  ended_at: string;
  error?: { code: string; message: string };
  callback?: CallbackOutcome;
}

/**
 * Keyframes are too sparse for the interval (decode everything) after a jump over two or more
 * slots at once, or after two jumps of any size.
 */
const SKIPPED_SLOTS_BEFORE_FULL_DECODE = 2;
const RECONNECT_DELAY_MS = 1_000;
/** At most one "reconnecting" log line this often; the count is in the next one. */
const RECONNECT_LOG_EVERY_MS = 10_000;
/** What the imager may have unread before new frames are shed: a few 1080p keyframes. */
const IMAGER_BACKLOG_BYTES = 4 * 1024 * 1024;
/** An imager that keeps dying is a broken stream or binary, not a hiccup. */
const MAX_IMAGER_STARTS_PER_RUN = 4;
/** Results list this many discarded images; all are counted. */
const MAX_DISCARDED_LISTED = 100;
/** Time given to finishing a dead invocation's uploads before this one starts. */
const RECOVERY_BUDGET_MS = 20_000;
/** How long packets may flow without a keyframe before we decode every frame (at least 3 intervals). */
const MIN_KEYFRAME_WAIT_MS = 6_000;

/**
 * Pulls a live stream and stores a snapshot every `intervalSec`, uploading each as soon as it
 * is written. Never throws for stream or storage trouble: the result says what happened, and
 * the callback (if any) gets the same result.
 */
export async function runSnapshotJob(job: SnapshotJob, runtime: SnapshotRuntime): Promise<SnapshotResult> {
  const log = runtime.logger.child({ job: 'snapshot' });
  // Before anything else: an ffmpeg of a killed invocation may still be pulling and writing.
  await reapDeadWorkDirs<SnapshotRecoveryInfo>(runtime.tmpRoot, 'snapshot', {
    logger: log,
    recover: runtime.storeFor ? (dead) => recoverSnapshots(dead, runtime.storeFor!, log, Date.now() + RECOVERY_BUDGET_MS) : undefined,
  });
  const recovery: SnapshotRecoveryInfo = { bucket: job.bucket, region: job.region, prefix: job.prefix, format: job.format, intervalSec: job.intervalSec, requestId: job.requestId };
  const workDir = await claimWorkDir(runtime.tmpRoot, 'snapshot', job.requestId, recovery);
  const capture = new SnapshotCapture(job, runtime, workDir, log);
  try {
    return await capture.run();
  } finally {
    // Images whose upload failed stay for the next invocation to store; otherwise the dir goes.
    await releaseWorkDir(workDir, capture.pendingFiles);
  }
}

interface RunState {
  run: number;
  /** The grid's anchor: the first frame chosen, its pts and when it arrived. */
  anchor?: { wallMs: number; ptsMs: number };
  selector?: KeyframeSelector;
  fileHeader?: Buffer;
  sequenceHeader?: FlvTag;
  imager?: Imager;
  imagers: Imager[];
  /** In full decode, frames are dropped until the next keyframe after shedding. */
  waitForKeyframe: boolean;
  /** pts → when the packet arrived and (keyframe selection) which slot it fills. */
  forwarded: Map<number, { receivedAt: number; slot?: number }>;
  startedAt: number;
  lastKeyframeAt?: number;
  stop?: () => void;
}

class SnapshotCapture {
  private readonly records: ImageRecord[] = [];
  /** How each record's frame was chosen, by seq: keyframe selection, or a full decode. */
  private readonly decodedBy: DecodeMode[] = [];
  private readonly discarded: DiscardedImage[] = [];
  private discardedCount = 0;
  private shed = 0;
  private readonly keyClock: KeyClock;
  private readonly uploader: ImageUploader;
  private readonly journal: AppendJournal;
  private readonly flushAbort = new AbortController();
  /** Aborted with the first stop request, so waits between reconnects end at once. */
  private readonly captureAbort = new AbortController();
  private stopReason: StopReason | undefined;
  private current: RunState | undefined;
  private mode: DecodeMode = 'keyframes';
  private modeSwitched = false;
  private skippedSlots = 0;
  private forwardedKeyframes = 0;
  private lastFrameAt: number | undefined;
  private firstError: string | undefined;
  private errorCode = 'SourceUnavailable';
  private readonly startedAt = Date.now();
  private manifestKeyWritten: string | null = null;

  constructor(
    private readonly job: SnapshotJob,
    private readonly runtime: SnapshotRuntime,
    private readonly workDir: string,
    private readonly log: Logger,
  ) {
    this.keyClock = new KeyClock(job.intervalSec * 1000);
    this.journal = new AppendJournal(runtime.store, journalKey(job.prefix), { logger: this.log, signal: this.flushAbort.signal });
    this.uploader = new ImageUploader(runtime.store, {
      contentType: CONTENT_TYPES[job.format],
      concurrency: runtime.uploadConcurrency ?? 4,
      latestKey: job.latest ? latestKey(job.prefix, job.format) : undefined,
      signal: this.flushAbort.signal,
      logger: this.log,
      onSettled: (record) => {
        if (record.status === 'uploaded') this.journal.add(this.manifestEntry(record));
        this.reportProgress();
      },
    });
  }

  /** Local files not stored yet (failed uploads); they outlive this invocation. */
  get pendingFiles(): number {
    return this.uploader.counts.failed;
  }

  async run(): Promise<SnapshotResult> {
    const captureTimers = this.armCaptureTimers();
    // Retries stop a little before the platform's kill, so the result still gets out.
    const flushTimer =
      this.runtime.deadlineAt === undefined ? undefined : setTimeout(() => this.flushAbort.abort(), Math.max(0, this.runtime.deadlineAt - Date.now() - 1_000));
    try {
      await this.captureLoop();
    } catch (error) {
      // A bug or an unexpected system failure: still flush what was captured.
      this.log.error('capture failed', { error });
      this.stopReason ??= 'error';
      this.firstError ??= error instanceof Error ? error.message : String(error);
    } finally {
      captureTimers.dispose();
    }
    await this.flush();
    try {
      return await this.finish();
    } finally {
      clearTimeout(flushTimer);
    }
  }

  /** max_duration, the deadline and SIGTERM each end the capture (not the flush). */
  private armCaptureTimers(): { dispose(): void } {
    const handles: NodeJS.Timeout[] = [];
    const stopAt = (timeMs: number, reason: StopReason) => handles.push(setTimeout(() => this.requestStop(reason), Math.max(0, timeMs - Date.now())));
    if (this.job.maxDurationSec !== undefined) stopAt(this.startedAt + this.job.maxDurationSec * 1000, 'max_duration');
    if (this.runtime.deadlineAt !== undefined) stopAt(this.runtime.deadlineAt - this.runtime.flushMarginMs, 'deadline');
    const onAbort = () => this.requestStop('terminated');
    if (this.runtime.signal?.aborted) onAbort();
    this.runtime.signal?.addEventListener('abort', onAbort, { once: true });
    return {
      dispose: () => {
        for (const handle of handles) clearTimeout(handle);
        this.runtime.signal?.removeEventListener('abort', onAbort);
      },
    };
  }

  private requestStop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.captureAbort.abort();
    this.log.info('stopping capture', { reason });
    this.current?.stop?.();
  }

  private async captureLoop(): Promise<void> {
    const idleMs = this.job.idleTimeoutSec * 1000;
    const connectDeadline = this.startedAt + this.job.connectTimeoutSec * 1000;
    // Until the first frame, connect_timeout bounds (re)connecting; after it, idle_timeout does.
    const windowEnd = () => (this.lastFrameAt === undefined ? connectDeadline : this.lastFrameAt + idleMs);
    let reconnects = 0;
    let lastReconnectLog = 0;
    for (let run = 0; !this.stopReason; run++) {
      // Checked before every connection: a name may start resolving elsewhere at any time.
      const forbidden = await metadataResolutionProblem(new URL(this.job.sourceUrl).hostname);
      if (forbidden) return this.fail(`the source host ${forbidden}; refused`, 'ForbiddenSource');
      const exit = await this.captureRun(run, Math.max(1_000, windowEnd() - Date.now()), idleMs);
      if (this.stopReason) return;
      if (this.modeSwitched) {
        // A full decode needs every packet, which this connection was not passing on.
        this.modeSwitched = false;
        continue;
      }
      const everConnected = this.lastFrameAt !== undefined;
      if (exit.unusable || exit.spawnError) return this.fail(describeSourceFailure(exit, this.job.connectTimeoutSec));
      if (exit.stopCause === 'stalled') return this.endCapture('idle');
      if (exit.stopCause === 'no-first-frame') {
        if (everConnected) return this.endCapture('idle');
        return this.fail(describeSourceFailure(exit, this.job.connectTimeoutSec));
      }
      // ffmpeg exited on its own. A finite HTTP source that ends cleanly is done; a live
      // connection that dropped gets reconnects until the idle (or connect) window closes.
      if (exit.code === 0 && exit.packets > 0 && /^https?:/i.test(this.job.sourceUrl)) return this.endCapture('ended');
      if (exit.packets === 0) this.firstError = describeSourceFailure(exit, this.job.connectTimeoutSec);
      if (Date.now() + RECONNECT_DELAY_MS >= windowEnd()) {
        if (everConnected) return this.endCapture('ended');
        return this.fail(this.firstError ?? describeSourceFailure(exit, this.job.connectTimeoutSec));
      }
      reconnects++;
      if (Date.now() - lastReconnectLog >= RECONNECT_LOG_EVERY_MS) {
        lastReconnectLog = Date.now();
        this.log.info('source closed; reconnecting', { run, reconnects, reason: redactUrls(this.firstError ?? `exit ${exit.code}`) });
      }
      await sleep(RECONNECT_DELAY_MS, this.captureAbort.signal);
    }
  }

  private endCapture(reason: StopReason): void {
    this.stopReason ??= reason;
  }

  private fail(message: string, code = 'SourceUnavailable'): void {
    this.firstError = message;
    this.errorCode = code;
    this.stopReason ??= 'error';
  }

  /** One connection: packets are relayed to the imager as they arrive, images are stored as they appear. */
  private async captureRun(run: number, firstFrameTimeoutMs: number, stallTimeoutMs: number): Promise<StreamPullExit> {
    const state: RunState = { run, imagers: [], waitForKeyframe: true, forwarded: new Map(), startedAt: Date.now() };
    this.current = state;
    const images = new ImageDirectory(this.workDir, {
      orderOf: (name) => {
        const parsed = parseSnapshotFileName(name, this.job.format);
        return parsed?.run === run ? parsed.ms : undefined;
      },
      onImage: (name, ms) => this.take(state, join(this.workDir, name), ms),
      logger: this.log,
    });
    const pull = new StreamPull({
      ffmpegPath: this.runtime.ffmpegPath,
      url: this.job.sourceUrl,
      ioTimeoutSec: this.job.idleTimeoutSec + 5,
      keyframesOnly: this.mode === 'keyframes',
      liveness: { firstFrameTimeoutMs, stallTimeoutMs },
      env: workDirEnv(this.workDir),
      onHeader: (header) => (state.fileHeader = header),
      onVideoTag: (tag, info) => this.onVideoTag(state, tag, info),
    });
    // Packets flowing but no IDR keyframe passed on: keyframes too sparse, or an open-GOP encoder
    // whose keyframes are not IDR pictures. Either way only a full decode gets pictures.
    const keyframeWatch = this.mode === 'keyframes'
      ? setInterval(() => {
          const waitedMs = Date.now() - (state.lastKeyframeAt ?? state.startedAt);
          if (pull.packetsReceived > 0 && waitedMs > Math.max(3 * this.job.intervalSec * 1000, MIN_KEYFRAME_WAIT_MS)) {
            this.switchToFullDecode(state, 'no keyframe for a while although packets arrive');
          }
        }, 1_000)
      : undefined;
    let stopped = false;
    state.stop = () => {
      if (stopped) return;
      stopped = true;
      // Ending the imager's input makes it write every picture it still holds; the pull has
      // nothing left that matters and is killed.
      for (const imager of state.imagers) void imager.finish();
      void pull.stop();
    };
    if (this.stopReason) state.stop();
    const exit = await pull.exited;
    clearInterval(keyframeWatch);
    state.stop();
    const imagerExits = await Promise.all(state.imagers.map((imager) => imager.finish()));
    await images.close();
    this.current = undefined;
    this.log.info('connection ended', {
      run,
      mode: this.mode,
      code: exit.code,
      signal: exit.signal,
      stopCause: exit.stopCause,
      packets: exit.packets,
      imagers: imagerExits.map((e) => e.code ?? e.signal),
    });
    return exit;
  }

  private onVideoTag(state: RunState, tag: FlvTag, info: VideoTagInfo): void {
    const now = Date.now();
    this.lastFrameAt = now;
    if (info.avcPacketType === 0) {
      state.sequenceHeader = tag;
      state.imager?.writeSequenceHeader(tag);
      return;
    }
    if (info.avcPacketType !== 1 || this.stopReason || !state.fileHeader || !state.sequenceHeader) return;
    if (!state.anchor) {
      if (!info.keyframe) return;
      state.anchor = { wallMs: now, ptsMs: info.pts };
      void this.noteRun(state);
    }
    if (info.keyframe) state.lastKeyframeAt = now;
    if (this.mode === 'all') return this.forward(state, tag, info, now, undefined);
    if (!info.keyframe) return;
    state.selector ??= new KeyframeSelector(this.job.intervalSec, state.anchor.ptsMs);
    const decision = state.selector.offer(info.pts);
    this.skippedSlots += decision.missedSlots;
    if (this.skippedSlots >= SKIPPED_SLOTS_BEFORE_FULL_DECODE) return this.switchToFullDecode(state, 'keyframes too sparse for the interval');
    if (decision.take) this.forward(state, tag, info, now, decision.slot);
  }

  /** From here on every frame is decoded, on a new connection that passes every packet on. */
  private switchToFullDecode(state: RunState, why: string): void {
    if (this.mode === 'all') return;
    this.log.info(`${why}; decoding every frame`);
    this.mode = 'all';
    this.modeSwitched = true;
    state.stop?.();
  }

  private forward(state: RunState, tag: FlvTag, info: VideoTagInfo, receivedAt: number, slot: number | undefined): void {
    if (state.waitForKeyframe && !info.keyframe) return;
    const imager = this.imagerFor(state);
    if (!imager) return;
    if (!imager.write(tag)) {
      // The imager is behind (or gone): drop this frame, and in a full decode the rest of its GOP.
      this.shed++;
      state.waitForKeyframe = this.mode === 'all';
      return;
    }
    state.waitForKeyframe = false;
    state.forwarded.set(info.pts, { receivedAt, slot });
    if (this.mode === 'keyframes' && this.job.maxSnapshots !== undefined && ++this.forwardedKeyframes >= this.job.maxSnapshots) {
      this.requestStop('max_snapshots');
    }
  }

  private imagerFor(state: RunState): Imager | undefined {
    if (state.imager?.running) return state.imager;
    if (state.imagers.length >= MAX_IMAGER_STARTS_PER_RUN) {
      const last = state.imagers.at(-1);
      void last?.exited.then((exit) => this.fail(`the imager keeps failing: ffmpeg exited with ${exit.code ?? exit.signal}: ${exit.stderrTail.slice(-2).join(' | ')}`));
      this.requestStop('error');
      return undefined;
    }
    state.imager = new Imager({
      ffmpegPath: this.runtime.ffmpegPath,
      plan: {
        mode: this.mode,
        intervalSec: this.job.intervalSec,
        anchorSec: state.anchor!.ptsMs / 1000,
        format: this.job.format,
        width: this.job.width,
        quality: this.job.quality,
        workDir: this.workDir,
        run: state.run,
      },
      fileHeader: state.fileHeader!,
      sequenceHeader: state.sequenceHeader!,
      maxBacklogBytes: IMAGER_BACKLOG_BYTES,
      env: workDirEnv(this.workDir),
    });
    state.imagers.push(state.imager);
    state.waitForKeyframe = true;
    return state.imager;
  }

  /** What recovery needs to name a dead invocation's images: each run's anchor and mode. */
  private async noteRun(state: RunState): Promise<void> {
    const line = JSON.stringify({ run: state.run, anchorWallMs: state.anchor!.wallMs, anchorPtsMs: state.anchor!.ptsMs, mode: this.mode });
    await appendFile(join(this.workDir, RUNS_FILE), line + '\n').catch((error) => this.log.warn('could not note the run', { error }));
  }

  private async take(state: RunState, filePath: string, ms: number): Promise<void> {
    const limit = this.job.maxSnapshots;
    if (limit !== undefined && this.records.length >= limit) {
      await rm(filePath, { force: true }); // written between the limit and the stop (full decode)
      return;
    }
    const streamTime = ms / 1000;
    const { problem, bytes, modifiedAt } = await imageFileProblem(this.job.format, filePath);
    if (problem) {
      this.discardedCount++;
      const entry = { run: state.run, stream_time: streamTime, reason: problem };
      if (this.discarded.length < MAX_DISCARDED_LISTED) this.discarded.push(entry);
      this.journal.add({ status: 'discarded', ...entry, request_id: this.job.requestId });
      this.log.warn('incomplete image discarded', { ...entry });
      await rm(filePath, { force: true });
      this.reportProgress();
      return;
    }
    const forwarded = state.forwarded.get(ms);
    // Older entries can no longer produce an image.
    for (const pts of state.forwarded.keys()) {
      if (pts > ms) break;
      state.forwarded.delete(pts);
    }
    const anchor = state.anchor!;
    const slot = forwarded?.slot ?? snapshotSlot(streamTime, anchor.ptsMs / 1000, this.job.intervalSec, 'all');
    const timeMs = this.keyClock.timeFor(anchor.wallMs, slot);
    const record: ImageRecord = {
      seq: this.records.length,
      key: snapshotKey(this.job.prefix, timeMs, this.job.format, this.job.intervalSec < 1),
      streamTime,
      run: state.run,
      timeMs,
      receivedAt: forwarded?.receivedAt,
      writtenAt: modifiedAt,
      bytes,
      attempts: 0,
      status: 'pending',
    };
    this.records.push(record);
    this.decodedBy.push(forwarded?.slot !== undefined ? 'keyframes' : 'all');
    this.uploader.enqueue(record, filePath);
    this.reportProgress();
    if (limit !== undefined && this.records.length >= limit) this.requestStop('max_snapshots');
  }

  private reportProgress(): void {
    this.runtime.onProgress?.({ ...this.counts(), elapsedMs: Date.now() - this.startedAt });
  }

  private counts(): SnapshotCounts {
    return { taken: this.records.length, ...this.uploader.counts, discarded: this.discardedCount, shed: this.shed };
  }

  private async flush(): Promise<void> {
    await this.uploader.drain();
    if (this.records.some((r) => r.status === 'failed') && !this.flushAbort.signal.aborted) {
      this.log.info('retrying failed snapshots once more');
      await this.uploader.retryFailed();
    }
    await this.journal.close();
    const key = manifestKey(this.job.prefix);
    try {
      await this.runtime.store.putBuffer(key, Buffer.from(JSON.stringify(this.manifest(), null, 2)), {
        contentType: 'application/json',
        signal: this.flushAbort.signal,
      });
      this.manifestKeyWritten = key;
    } catch (error) {
      this.log.error('manifest upload failed', { key, error });
    }
  }

  private manifestEntry(record: ImageRecord) {
    return {
      key: record.key,
      stream_time: Number(record.streamTime.toFixed(3)),
      run: record.run,
      wall_time: new Date(record.timeMs).toISOString(),
      received_at: record.receivedAt === undefined ? null : new Date(record.receivedAt).toISOString(),
      written_at: new Date(record.writtenAt).toISOString(),
      uploaded_at: record.uploadedAt === undefined ? null : new Date(record.uploadedAt).toISOString(),
      bytes: record.bytes ?? null,
      status: record.status,
      decode: this.decodedBy[record.seq],
      request_id: this.job.requestId,
    };
  }

  private manifest() {
    return {
      version: 2,
      request_id: this.job.requestId,
      source: redactUrls(this.job.sourceUrl),
      interval: this.job.intervalSec,
      format: this.job.format,
      stop_reason: this.stopReason,
      counts: this.counts(),
      snapshots: this.records.map((record) => this.manifestEntry(record)),
      discarded: this.discarded,
    };
  }

  private async finish(): Promise<SnapshotResult> {
    const counts = this.counts();
    const stopReason = this.stopReason ?? 'error';
    const result: SnapshotResult = {
      request_id: this.job.requestId,
      status: stopReason === 'error' ? 'error' : counts.failed > 0 || this.manifestKeyWritten === null ? 'partial' : 'ok',
      stop_reason: stopReason,
      source: redactUrls(this.job.sourceUrl),
      bucket: this.job.bucket,
      region: this.job.region,
      prefix: this.job.prefix,
      decode: this.mode,
      counts,
      failed_keys: this.records.filter((r) => r.status !== 'uploaded').map((r) => r.key),
      discarded: this.discarded,
      first_key: this.records[0]?.key ?? null,
      last_key: this.records.at(-1)?.key ?? null,
      manifest_key: this.manifestKeyWritten,
      journal_key: this.journal.linesWritten > 0 ? this.journal.key : null,
      started_at: new Date(this.startedAt).toISOString(),
      ended_at: new Date().toISOString(),
    };
    if (stopReason === 'error') result.error = { code: this.errorCode, message: redactUrls(this.firstError ?? 'capture failed') };
    if (this.job.callbackUrl) {
      result.callback = await deliverCallback(this.job.callbackUrl, result, {
        secret: this.runtime.callbackSecret,
        signal: this.flushAbort.signal,
        deadlineAt: this.runtime.deadlineAt === undefined ? undefined : this.runtime.deadlineAt - CALLBACK_DEADLINE_RESERVE_MS,
      });
      result.ended_at = new Date().toISOString();
    }
    return result;
  }
}
