import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { deliverCallback, type CallbackOutcome } from '../callback';
import { describeExit, FfmpegProcess, type FfmpegExit } from '../ffmpeg/supervisor';
import type { Logger } from '../log';
import { redactUrls } from '../redact';
import { sleep } from '../retry';
import type { ObjectStore } from '../storage/types';
import { snapshotFileName, snapshotRunArgs, snapshotSlot, streamTimeFromFileName, type DecodeMode } from './args';
import { CONTENT_TYPES, type ImageFormat } from './image-format';
import { KeyClock, latestKey, manifestKey, snapshotKey } from './keys';
import { SnapshotUploader, type SnapshotRecord } from './uploader';

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
  onProgress?: (progress: { taken: number; uploaded: number; failed: number; elapsedMs: number }) => void;
}

export type StopReason = 'ended' | 'idle' | 'max_duration' | 'max_snapshots' | 'deadline' | 'terminated' | 'error';

export interface SnapshotResult {
  request_id: string;
  status: 'ok' | 'partial' | 'error';
  stop_reason: StopReason;
  source: string;
  bucket: string;
  region: string;
  prefix: string;
  decode: DecodeMode;
  counts: { taken: number; uploaded: number; failed: number };
  failed_keys: string[];
  first_key: string | null;
  last_key: string | null;
  manifest_key: string | null;
  started_at: string;
  ended_at: string;
  error?: { code: string; message: string };
  callback?: CallbackOutcome;
}

const POLL_MS = 200;
/**
 * Keyframes are too sparse for the interval (decode everything) after a jump over two
 * or more slots at once, or after two jumps of any size: a single one-slot gap may be
 * a network hiccup, but the reorder delay makes waiting for more evidence expensive.
 */
const SKIPPED_SLOTS_BEFORE_FULL_DECODE = 2;
const RECONNECT_DELAY_MS = 1_000;

/**
 * Pulls a live stream and stores a snapshot every `intervalSec`, uploading each
 * as soon as it is written. Never throws for stream or storage trouble: the result
 * says what happened, and the callback (if any) gets the same result.
 */
export async function runSnapshotJob(job: SnapshotJob, runtime: SnapshotRuntime): Promise<SnapshotResult> {
  await mkdir(runtime.tmpRoot, { recursive: true });
  const workDir = await mkdtemp(join(runtime.tmpRoot, 'snapshot-'));
  const capture = new SnapshotCapture(job, runtime, workDir);
  try {
    return await capture.run();
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

class SnapshotCapture {
  private readonly log: Logger;
  private readonly records: SnapshotRecord[] = [];
  private readonly keyClock: KeyClock;
  private readonly uploader: SnapshotUploader;
  private readonly flushAbort = new AbortController();
  /** Aborted with the first stop request, so waits between reconnects end at once. */
  private readonly captureAbort = new AbortController();
  private stopReason: StopReason | undefined;
  private current: FfmpegProcess | undefined;
  private mode: DecodeMode = 'keyframes';
  private switchToFullDecode = false;
  private skippedSlots = 0;
  private lastFrameAt: number | undefined;
  private firstError: string | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly job: SnapshotJob,
    private readonly runtime: SnapshotRuntime,
    private readonly workDir: string,
  ) {
    this.log = runtime.logger.child({ job: 'snapshot' });
    this.keyClock = new KeyClock(job.intervalSec * 1000);
    this.uploader = new SnapshotUploader(runtime.store, {
      contentType: CONTENT_TYPES[job.format],
      concurrency: runtime.uploadConcurrency ?? 4,
      latestKey: job.latest ? latestKey(job.prefix, job.format) : undefined,
      signal: this.flushAbort.signal,
      logger: this.log,
      onSettled: () => this.reportProgress(),
    });
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
    void this.current?.stop('requested');
  }

  private async captureLoop(): Promise<void> {
    const idleMs = this.job.idleTimeoutSec * 1000;
    const connectDeadline = this.startedAt + this.job.connectTimeoutSec * 1000;
    // Until the first frame, connect_timeout bounds (re)connecting; after it, idle_timeout does.
    const windowEnd = () => (this.lastFrameAt === undefined ? connectDeadline : this.lastFrameAt + idleMs);
    for (let run = 0; !this.stopReason; run++) {
      const exit = await this.captureRun(run, Math.max(1_000, windowEnd() - Date.now()), idleMs);
      if (this.stopReason) return;
      if (this.switchToFullDecode) {
        this.switchToFullDecode = false;
        this.mode = 'all';
        this.log.info('keyframes too sparse for the interval; decoding every frame');
        continue;
      }
      if (exit.spawnError) {
        this.firstError = `ffmpeg could not start: ${exit.spawnError.message}`;
        this.stopReason = 'error';
        return;
      }
      if (exit.stopCause === 'stalled') {
        this.stopReason = 'idle';
        return;
      }
      const everConnected = this.lastFrameAt !== undefined;
      if (exit.stopCause === 'no-first-frame') {
        this.stopReason = everConnected ? 'idle' : 'error';
        if (!everConnected) this.firstError ??= `no video received within connect_timeout (${this.job.connectTimeoutSec} s)`;
        return;
      }
      // ffmpeg exited on its own. A finite HTTP source that ends cleanly is done; a live
      // connection that dropped gets reconnects until the idle (or connect) window closes.
      const cleanHttpEnd = exit.code === 0 && exit.frames > 0 && /^https?:/i.test(this.job.sourceUrl);
      if (cleanHttpEnd) {
        this.stopReason = 'ended';
        return;
      }
      if (exit.frames === 0 && exit.code !== 0) this.firstError = describeExit(exit);
      if (Date.now() + RECONNECT_DELAY_MS >= windowEnd()) {
        this.stopReason = everConnected ? 'ended' : 'error';
        return;
      }
      this.log.info('source closed; reconnecting', { run, code: exit.code, frames: exit.frames });
      await sleep(RECONNECT_DELAY_MS, this.captureAbort.signal);
    }
  }

  /** One ffmpeg connection: snapshots are handed to the uploader as they appear. */
  private async captureRun(run: number, firstFrameTimeoutMs: number, stallTimeoutMs: number): Promise<FfmpegExit> {
    let lastTakenMs = Number.NEGATIVE_INFINITY;
    let runAnchorMs: number | undefined;
    let firstStreamTime = 0;
    let previousSlot = -1;
    let runFrames = 0;

    const nameKeyTime = (streamTime: number): number => {
      if (runAnchorMs === undefined) {
        runAnchorMs = Date.now();
        firstStreamTime = streamTime;
      }
      const slot = snapshotSlot(streamTime, firstStreamTime, this.job.intervalSec, this.mode);
      if (this.mode === 'keyframes' && previousSlot >= 0 && slot - previousSlot >= 2) this.noteSkippedSlots(slot - previousSlot - 1);
      previousSlot = slot;
      return this.keyClock.timeFor(runAnchorMs, slot);
    };
    // Files are renamed into place in stream order, so everything newer than the last
    // one taken is complete and can go, oldest first.
    const scan = async () => {
      const ready = (await readdir(this.workDir))
        .map((name) => streamTimeFromFileName(name, run, this.job.format))
        .filter((ms): ms is number => ms !== undefined && ms > lastTakenMs)
        .sort((a, b) => a - b);
      for (const ms of ready) {
        lastTakenMs = ms;
        await this.take(run, join(this.workDir, snapshotFileName(run, this.job.format, ms)), ms / 1000, nameKeyTime);
      }
    };

    const process = new FfmpegProcess({
      binary: this.runtime.ffmpegPath,
      args: snapshotRunArgs({
        sourceUrl: this.job.sourceUrl,
        mode: this.mode,
        intervalSec: this.job.intervalSec,
        format: this.job.format,
        width: this.job.width,
        quality: this.job.quality,
        ioTimeoutSec: this.job.idleTimeoutSec + 5,
        workDir: this.workDir,
        run,
      }),
      liveness: { firstFrameTimeoutMs, stallTimeoutMs },
      onProgress: (block) => {
        if (block.frame > runFrames) {
          runFrames = block.frame;
          this.lastFrameAt = Date.now();
        }
      },
    });
    this.current = process;
    if (this.stopReason) void process.stop('requested');

    let scanning = Promise.resolve();
    const poller = setInterval(() => {
      scanning = scanning.then(scan).catch((error) => this.log.warn('scan failed', { error }));
    }, POLL_MS);
    const exit = await process.exited;
    clearInterval(poller);
    await scanning;
    await scan();
    this.current = undefined;
    this.log.info('ffmpeg run ended', {
      run,
      mode: this.mode,
      code: exit.code,
      signal: exit.signal,
      stopCause: exit.stopCause,
      escalation: exit.escalation,
      frames: exit.frames,
    });
    return exit;
  }

  private noteSkippedSlots(missed: number): void {
    this.skippedSlots += missed;
    if (this.skippedSlots >= SKIPPED_SLOTS_BEFORE_FULL_DECODE && !this.switchToFullDecode) {
      this.switchToFullDecode = true;
      void this.current?.stop('requested');
    }
  }

  private async take(run: number, filePath: string, streamTime: number, keyTimeFor: (streamTime: number) => number): Promise<void> {
    const limit = this.job.maxSnapshots;
    if (limit !== undefined && this.records.length >= limit) {
      await rm(filePath, { force: true }); // written between the limit and ffmpeg's stop
      return;
    }
    const writtenAt = (await stat(filePath)).mtimeMs;
    const timeMs = keyTimeFor(streamTime);
    const record: SnapshotRecord = {
      seq: this.records.length,
      key: snapshotKey(this.job.prefix, timeMs, this.job.format, this.job.intervalSec < 1),
      streamTime,
      run,
      timeMs,
      writtenAt,
      attempts: 0,
      status: 'pending',
    };
    this.records.push(record);
    this.uploader.enqueue(record, filePath);
    this.reportProgress();
    if (limit !== undefined && this.records.length >= limit) this.requestStop('max_snapshots');
  }

  private reportProgress(): void {
    const counts = this.counts();
    this.runtime.onProgress?.({ ...counts, elapsedMs: Date.now() - this.startedAt });
  }

  private counts() {
    return { taken: this.records.length, ...this.uploader.counts };
  }

  private manifestKeyWritten: string | null = null;

  private async flush(): Promise<void> {
    await this.uploader.drain();
    if (this.records.some((r) => r.status === 'failed') && !this.flushAbort.signal.aborted) {
      this.log.info('retrying failed snapshots once more');
      await this.uploader.retryFailed();
    }
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

  private manifest() {
    return {
      version: 1,
      request_id: this.job.requestId,
      source: redactUrls(this.job.sourceUrl),
      interval: this.job.intervalSec,
      format: this.job.format,
      stop_reason: this.stopReason,
      snapshots: this.records.map((r) => ({
        key: r.key,
        stream_time: Number(r.streamTime.toFixed(3)),
        run: r.run,
        wall_time: new Date(r.timeMs).toISOString(),
        written_at: new Date(r.writtenAt).toISOString(),
        uploaded_at: r.uploadedAt === undefined ? null : new Date(r.uploadedAt).toISOString(),
        bytes: r.bytes ?? null,
        status: r.status,
      })),
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
      first_key: this.records[0]?.key ?? null,
      last_key: this.records.at(-1)?.key ?? null,
      manifest_key: this.manifestKeyWritten,
      started_at: new Date(this.startedAt).toISOString(),
      ended_at: new Date().toISOString(),
    };
    if (stopReason === 'error') result.error = { code: 'SourceUnavailable', message: redactUrls(this.firstError ?? 'capture failed') };
    if (this.job.callbackUrl) {
      result.callback = await deliverCallback(this.job.callbackUrl, result, { secret: this.runtime.callbackSecret, signal: this.flushAbort.signal });
      result.ended_at = new Date().toISOString();
    }
    return result;
  }
}
