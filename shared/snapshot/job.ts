import { appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CALLBACK_DEADLINE_RESERVE_MS, deliverCallback, type CallbackOutcome } from '../callback';
import type { Logger } from '../log';
import type { FlvTag, VideoTagInfo } from '../media/flv';
import { accessUnitInfo } from '../media/h264-nal';
import { nalLengthSize, parseSps, unescapeRbsp, type SpsInfo } from '../media/h264-sps';
import { redactUrls } from '../redact';
import { sleep } from '../retry';
import { HlsProxy } from '../sources/hls-proxy';
import { HttpFlvSource } from '../sources/http-flv-source';
import { NodeRtmpSource } from '../sources/rtmp-source';
import { FfmpegPullSource } from '../sources/stream-pull';
import type { ReceptionPath, SourceEnd, VideoSource } from '../sources/video-source';
import { imageFileProblem } from '../outputs/images/check';
import { CONTENT_TYPES, type ImageFormat, type PictureFormat } from '../outputs/images/format';
import { ImageDirectory } from '../outputs/images/image-files';
import { ImageUploader, type ImageRecord } from '../upload/image-uploader';
import { AppendJournal } from '../upload/journal';
import type { ObjectStore } from '../storage/types';
import { claimWorkDir, reapDeadWorkDirs, releaseWorkDir, workDirEnv } from '../work-dirs';
import { imagerTime, parseSnapshotFileName } from './args';
import { FeedPlanner, type FeedItem } from './feed-planner';
import { Imager } from './imager';
import { journalKey, latestKey, manifestKey, snapshotKey } from './keys';
import { recoverSnapshots, RUNS_FILE, type ImagerNote, type SnapshotRecoveryInfo } from './recovery';
import { StreamTimeline } from './timeline';

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
  /** Pictures not decoded because the imager could not keep up (load shed). */
  shed: number;
}

export interface DiscardedImage {
  run: number;
  stream_time: number;
  reason: string;
}

/** How the pictures were decoded: what it cost, and which images needed more than a keyframe. */
export interface DecodeReport {
  /** Images that are a keyframe decoded alone (the cheap case: keyframes at least as often as the interval). */
  images_from_keyframes: number;
  /** Images decoded from inside a GOP (keyframes further apart than the interval, open GOP, intra refresh). */
  images_from_gop: number;
  /** Reference pictures decoded only so that a chosen one could be. */
  reference_pictures_decoded: number;
  /** Pictures never decoded (not needed, or nothing refers to them). */
  pictures_skipped: number;
  /** When the first image from inside a GOP was taken (null: every image was a keyframe). */
  gop_decoding_since: string | null;
}

/** One line for people: how the images were decoded. */
export function describeDecoding(decode: DecodeReport): string {
  const parts = [`${decode.images_from_keyframes} from keyframes`];
  if (decode.images_from_gop > 0) parts.push(`${decode.images_from_gop} from inside a GOP (${decode.reference_pictures_decoded} reference pictures decoded to reach them)`);
  return parts.join(', ');
}

export interface SnapshotResult {
  request_id: string;
  status: 'ok' | 'partial' | 'error';
  stop_reason: StopReason;
  source: string;
  bucket: string;
  region: string;
  prefix: string;
  /** Which client received the stream (the last connection's). */
  reception: ReceptionPath | null;
  decode: DecodeReport;
  /** Times the source's clock restarted (publisher reconnects, republishes). */
  timestamp_restarts: number;
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

const RECONNECT_DELAY_MS = 1_000;
/** At most one "reconnecting" log line this often; the count is in the next one. */
const RECONNECT_LOG_EVERY_MS = 10_000;
/** What the imager may have unread before new pictures are shed: a few 1080p keyframes. */
const IMAGER_BACKLOG_BYTES = 4 * 1024 * 1024;
/** Reference pictures held for a GOP picture that may be needed; beyond it they are decoded at once. */
const MAX_HELD_REFERENCE_BYTES = 16 * 1024 * 1024;
/** An imager that keeps dying is a broken stream or binary, not a hiccup. */
const MAX_IMAGER_STARTS_PER_CONNECTION = 4;
/** Results list this many discarded images; all are counted. */
const MAX_DISCARDED_LISTED = 100;
/** Time given to finishing a dead invocation's uploads before this one starts. */
const RECOVERY_BUDGET_MS = 20_000;
/** A refused connection is retried this long (a server starting up), then reported. */
const REFUSED_GRACE_MS = 3_000;
/** Imager time starts this far before the first picture fed, so decode times stay positive. */
const IMAGER_BASE_MARGIN_MS = 10_000;
/** Source failures that another attempt cannot mend; reported at once. */
const FINAL_FAILURES = new Set(['forbidden', 'unresolvable', 'not-found', 'rejected', 'tls', 'not-h264', 'not-flv', 'spawn', 'no-video', 'redirects']);

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

/** What the planner hands back with each picture it decides on. */
interface Picture {
  tag: FlvTag;
  dtsMs: number;
  ptsMs: number;
  receivedAt: number;
}

/** One imager and the images it writes. */
interface ImagerSlot {
  imager: Imager;
  images: ImageDirectory;
  /** Imager time of each chosen picture → its slot, when it arrived, and how it was decoded. */
  chosen: Map<number, { slot: number; receivedAt: number; fromKeyframe: boolean; ptsMs: number }>;
  done: Promise<void>;
}

/** The stream's format as its sequence header declares it; a change means a new imager. */
interface StreamFormat {
  header: FlvTag;
  picture: PictureFormat;
  width: number;
  height: number;
  nalLengthSize: number;
}

interface Connection {
  number: number;
  source?: VideoSource;
  format?: StreamFormat;
  imager?: ImagerSlot;
  imagerStarts: number;
  stop(): void;
}

class SnapshotCapture {
  private readonly records: ImageRecord[] = [];
  /** How each record's picture was decoded, by seq. */
  private readonly decodedFrom: Array<'keyframe' | 'gop'> = [];
  private readonly discarded: DiscardedImage[] = [];
  private discardedCount = 0;
  private shed = 0;
  private readonly uploader: ImageUploader;
  private readonly journal: AppendJournal;
  private readonly flushAbort = new AbortController();
  /** Aborted with the first stop request, so waits between reconnects end at once. */
  private readonly captureAbort = new AbortController();
  private readonly planner: FeedPlanner<Picture>;
  private readonly timeline = new StreamTimeline();
  private readonly imagers = new Set<ImagerSlot>();
  private nextImagerRun = 0;
  private stopReason: StopReason | undefined;
  private current: Connection | undefined;
  /** Our own clients first; ffmpeg once a server spoke something they do not, or for HLS. */
  private useFfmpeg = false;
  private hlsProxy: HlsProxy | undefined;
  private reception: ReceptionPath | null = null;
  private chosenCount = 0;
  private firstGopImageAt: number | undefined;
  private lastPacketAt: number | undefined;
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
    this.planner = new FeedPlanner({ intervalMs: job.intervalSec * 1000, maxHeldBytes: MAX_HELD_REFERENCE_BYTES });
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
      await Promise.all([...this.imagers].map((slot) => this.retire(slot)));
      await this.hlsProxy?.close();
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
    this.current?.stop();
  }

  private async captureLoop(): Promise<void> {
    const idleMs = this.job.idleTimeoutSec * 1000;
    const connectDeadline = this.startedAt + this.job.connectTimeoutSec * 1000;
    // Until the first packet, connect_timeout bounds (re)connecting; after it, idle_timeout does.
    const windowEnd = () => (this.lastPacketAt === undefined ? connectDeadline : this.lastPacketAt + idleMs);
    let reconnects = 0;
    let lastReconnectLog = 0;
    for (let number = 0; !this.stopReason; number++) {
      const end = await this.captureConnection(number, Math.max(1_000, windowEnd() - Date.now()), idleMs);
      if (this.stopReason) return;
      const everReceived = this.lastPacketAt !== undefined;
      if (end.reason === 'unsupported' || end.reason === 'is-hls') {
        this.log.info(end.reason === 'is-hls' ? 'the source is HLS; reading it with ffmpeg' : 'the RTMP server speaks something our client does not; using ffmpeg', { detail: end.message });
        this.useFfmpeg = true;
        continue;
      }
      if (end.reason === 'failed') {
        const message = end.message ?? 'the source failed';
        if (end.code === 'forbidden') return this.fail(message, 'ForbiddenSource');
        if (end.code !== undefined && FINAL_FAILURES.has(end.code) && (!everReceived || end.code === 'not-h264')) return this.fail(message);
        if (end.code === 'refused' && !everReceived && Date.now() - this.startedAt >= REFUSED_GRACE_MS) return this.fail(message);
        this.firstError = message;
      }
      if (end.reason === 'stalled') return this.endCapture('idle');
      if (end.reason === 'no-first-frame') {
        if (everReceived) return this.endCapture('idle');
        return this.fail(this.firstError ?? `connected, but no video arrived within connect_timeout (${this.job.connectTimeoutSec} s): nothing is being published at this URL`);
      }
      // A finite HTTP source (a file, an HLS VOD playlist) that ends cleanly is done; a live
      // connection that dropped gets reconnects until the idle (or connect) window closes.
      if (end.reason === 'closed' && end.packets > 0 && /^https?:/i.test(this.job.sourceUrl)) return this.endCapture('ended');
      if (Date.now() + RECONNECT_DELAY_MS >= windowEnd()) {
        if (everReceived) return this.endCapture('ended');
        return this.fail(this.firstError ?? end.message ?? 'the source closed before any video arrived');
      }
      reconnects++;
      if (Date.now() - lastReconnectLog >= RECONNECT_LOG_EVERY_MS) {
        lastReconnectLog = Date.now();
        this.log.info('source closed; reconnecting', { connection: number, reconnects, reason: redactUrls(end.message ?? end.reason) });
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

  /** One connection: pictures are relayed to the imager as they arrive, images stored as they appear. */
  private async captureConnection(number: number, firstPacketTimeoutMs: number, stallTimeoutMs: number): Promise<SourceEnd> {
    const connection: Connection = { number, imagerStarts: 0, stop: () => connection.source?.stop() };
    this.current = connection;
    this.timeline.newConnection();
    // A new connection's decoder starts from nothing.
    this.planner.reset();
    const options = {
      url: this.job.sourceUrl,
      liveness: { firstPacketTimeoutMs, stallTimeoutMs },
      onVideoTag: (tag: FlvTag, info: VideoTagInfo) => this.onVideoTag(connection, tag, info),
    };
    const scheme = new URL(this.job.sourceUrl).protocol;
    const hls = /\.m3u8?$/i.test(new URL(this.job.sourceUrl).pathname);
    if (this.useFfmpeg || ((scheme === 'http:' || scheme === 'https:') && hls)) {
      if (scheme === 'http:' || scheme === 'https:') this.hlsProxy ??= await HlsProxy.start();
      connection.source = new FfmpegPullSource({ ...options, ffmpegPath: this.runtime.ffmpegPath, ioTimeoutSec: this.job.idleTimeoutSec + 5, env: workDirEnv(this.workDir), hlsProxy: this.hlsProxy });
    } else if (scheme === 'rtmp:' || scheme === 'rtmps:') {
      connection.source = new NodeRtmpSource(options);
    } else {
      connection.source = new HttpFlvSource(options);
    }
    this.reception = connection.source.path;
    if (this.stopReason) connection.stop();
    const end = await connection.source.ended;
    if (connection.imager) await this.retire(connection.imager);
    this.current = undefined;
    this.log.info('connection ended', { connection: number, path: end.path, reason: end.reason, code: end.code, packets: end.packets, detail: end.message && redactUrls(end.message) });
    return end;
  }

  private onVideoTag(connection: Connection, tag: FlvTag, info: VideoTagInfo): void {
    const now = Date.now();
    this.lastPacketAt = now;
    if (info.avcPacketType === 0) return this.onSequenceHeader(connection, tag);
    const format = connection.format;
    if (info.avcPacketType !== 1 || this.stopReason || !format) return;
    const dtsMs = this.timeline.mapDts(tag.dts, now);
    const ptsMs = dtsMs + (info.pts - tag.dts);
    const unit = accessUnitInfo(tag.data.subarray(5), format.nalLengthSize);
    // An encoder may change its parameters in band, without a new sequence header.
    if (unit.sps && info.keyframe && changedFormat(format, unit.sps)) this.changeFormat(connection, { ...format, ...formatOfSps(unit.sps) });
    const items = this.planner.offer({ timeMs: ptsMs, keyframe: info.keyframe, info: unit, bytes: tag.bytes.length, payload: { tag, dtsMs, ptsMs, receivedAt: now } });
    for (const item of items) {
      if (!this.feed(connection, item)) break;
    }
  }

  private onSequenceHeader(connection: Connection, tag: FlvTag): void {
    if (connection.format?.header.data.equals(tag.data)) return;
    const record = tag.data.subarray(5);
    const sps = firstSpsOf(record);
    if (!sps) return this.log.warn('a sequence header without a readable SPS; ignored');
    this.changeFormat(connection, { header: tag, nalLengthSize: nalLengthSize(record), ...formatOfSps(sps) });
  }

  /** New parameters (a republish at another size, say): the next keyframe starts a new imager. */
  private changeFormat(connection: Connection, format: StreamFormat): void {
    const previous = connection.format;
    connection.format = format;
    if (previous && (previous.width !== format.width || previous.height !== format.height)) {
      this.log.info('the stream changed its picture size', { from: `${previous.width}x${previous.height}`, to: `${format.width}x${format.height}` });
    }
    if (connection.imager) void this.retire(connection.imager);
    connection.imager = undefined;
    this.planner.reset();
  }

  /** Passes one planned picture to the imager; false when the rest of this batch must not follow. */
  private feed(connection: Connection, item: FeedItem<Picture>): boolean {
    const picture = item.unit.payload;
    const chosen = item.slot !== undefined;
    const slot = connection.imager ?? this.startImager(connection, picture);
    if (!slot) return false;
    if (!slot.imager.write(picture.tag, picture, chosen)) {
      // Behind (or gone): this picture is lost, and the decoder cannot go on from it. Start again
      // at the next keyframe; a stream decoded without gaps needs a fresh decoder for that.
      this.shed++;
      this.planner.reset();
      if (!slot.imager.running || this.planner.decodesWithoutGaps) {
        connection.imager = undefined;
        void this.retire(slot);
      }
      return false;
    }
    if (chosen) {
      const fromKeyframe = item.unit.keyframe && item.unit.info.sliceType === 'I';
      slot.chosen.set(imagerTime(picture.ptsMs, slot.imager.baseMs, true), { slot: item.slot!, receivedAt: picture.receivedAt, fromKeyframe, ptsMs: picture.ptsMs });
      if (!fromKeyframe) this.firstGopImageAt ??= Date.now();
      if (this.job.maxSnapshots !== undefined && ++this.chosenCount >= this.job.maxSnapshots) this.requestStop('max_snapshots');
    }
    return true;
  }

  private startImager(connection: Connection, first: Picture): ImagerSlot | undefined {
    const format = connection.format!;
    if (connection.imagerStarts >= MAX_IMAGER_STARTS_PER_CONNECTION) {
      this.fail(`the imager keeps failing on this stream (${connection.imagerStarts} starts)`, 'ImagerFailed');
      this.requestStop('error');
      return undefined;
    }
    connection.imagerStarts++;
    const run = this.nextImagerRun++;
    const baseMs = first.dtsMs - IMAGER_BASE_MARGIN_MS;
    const imager = new Imager({
      ffmpegPath: this.runtime.ffmpegPath,
      plan: { format: this.job.format, picture: format.picture, width: this.job.width, quality: this.job.quality, workDir: this.workDir, run },
      baseMs,
      sequenceHeader: format.header,
      maxBacklogBytes: IMAGER_BACKLOG_BYTES,
      env: workDirEnv(this.workDir),
    });
    const slot: ImagerSlot = {
      imager,
      chosen: new Map(),
      images: new ImageDirectory(this.workDir, {
        orderOf: (name) => {
          const parsed = parseSnapshotFileName(name, this.job.format);
          return parsed?.run === run ? parsed.ms : undefined;
        },
        onImage: (name, ms) => this.take(slot, join(this.workDir, name), ms),
        logger: this.log,
      }),
      done: Promise.resolve(),
    };
    this.imagers.add(slot);
    void this.noteImager({ run, baseMs, originMs: this.planner.gridOrigin!, intervalMs: this.job.intervalSec * 1000 });
    void imager.exited.then((exit) => {
      if (exit.code !== 0 && exit.stopCause === undefined) this.log.warn('the imager failed', { run, code: exit.code, signal: exit.signal, stderr: exit.stderrTail.slice(-3) });
    });
    connection.imager = slot;
    return slot;
  }

  /** Ends an imager's input; resolves once every image it wrote has been handed over. */
  private retire(slot: ImagerSlot): Promise<void> {
    if (!this.imagers.has(slot)) return slot.done;
    this.imagers.delete(slot);
    slot.done = slot.imager.finish().then(() => slot.images.close());
    return slot.done;
  }

  /** What recovery needs to name a dead invocation's images. */
  private async noteImager(note: ImagerNote): Promise<void> {
    await appendFile(join(this.workDir, RUNS_FILE), JSON.stringify(note) + '\n').catch((error) => this.log.warn('could not note the imager', { error }));
  }

  private async take(slot: ImagerSlot, filePath: string, imagerMs: number): Promise<void> {
    const limit = this.job.maxSnapshots;
    if (limit !== undefined && this.records.length >= limit) {
      await rm(filePath, { force: true });
      return;
    }
    const chosen = slot.chosen.get(imagerMs);
    // Older entries can no longer produce an image.
    for (const ms of slot.chosen.keys()) {
      if (ms > imagerMs) break;
      slot.chosen.delete(ms);
    }
    const origin = this.planner.gridOrigin!;
    const streamTime = ((chosen?.ptsMs ?? slot.imager.baseMs + imagerMs / 2) - origin) / 1000;
    const { problem, bytes, modifiedAt } = await imageFileProblem(this.job.format, filePath);
    if (problem || !chosen) {
      this.discardedCount++;
      const entry = { run: slot.imager.run, stream_time: Number(streamTime.toFixed(3)), reason: problem ?? 'not a picture that was asked for' };
      if (this.discarded.length < MAX_DISCARDED_LISTED) this.discarded.push(entry);
      this.journal.add({ status: 'discarded', ...entry, request_id: this.job.requestId });
      this.log.warn('image discarded', { ...entry });
      await rm(filePath, { force: true });
      this.reportProgress();
      return;
    }
    const timeMs = origin + chosen.slot * this.job.intervalSec * 1000;
    const record: ImageRecord = {
      seq: this.records.length,
      key: snapshotKey(this.job.prefix, timeMs, this.job.format, this.job.intervalSec < 1),
      streamTime,
      run: slot.imager.run,
      timeMs,
      receivedAt: chosen.receivedAt,
      writtenAt: modifiedAt,
      bytes,
      attempts: 0,
      status: 'pending',
    };
    this.records.push(record);
    this.decodedFrom.push(chosen.fromKeyframe ? 'keyframe' : 'gop');
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

  private decodeReport(): DecodeReport {
    const fromKeyframes = this.decodedFrom.filter((from) => from === 'keyframe').length;
    return {
      images_from_keyframes: fromKeyframes,
      images_from_gop: this.decodedFrom.length - fromKeyframes,
      reference_pictures_decoded: this.planner.counts.referencesFed,
      pictures_skipped: this.planner.counts.skipped,
      gop_decoding_since: this.firstGopImageAt === undefined ? null : new Date(this.firstGopImageAt).toISOString(),
    };
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
      decoded_from: this.decodedFrom[record.seq],
      request_id: this.job.requestId,
    };
  }

  private manifest() {
    return {
      version: 3,
      request_id: this.job.requestId,
      source: redactUrls(this.job.sourceUrl),
      interval: this.job.intervalSec,
      format: this.job.format,
      stop_reason: this.stopReason,
      counts: this.counts(),
      decode: this.decodeReport(),
      snapshots: this.records.map((record) => this.manifestEntry(record)),
      discarded: this.discarded,
    };
  }

  private async finish(): Promise<SnapshotResult> {
    const counts = this.counts();
    const stopReason = this.stopReason ?? 'error';
    // Nothing stored is never a success, whatever ended the capture.
    if (stopReason !== 'error' && counts.uploaded === 0) {
      this.firstError = this.lastPacketAt === undefined
        ? (this.firstError ?? 'no video arrived from the source')
        : counts.taken > 0
          ? 'no snapshot could be stored'
          : 'video arrived, but no picture could be decoded from it before the capture ended';
      this.errorCode = counts.taken > 0 ? 'StorageError' : 'NothingCaptured';
    }
    const failed = stopReason === 'error' || counts.uploaded === 0;
    const result: SnapshotResult = {
      request_id: this.job.requestId,
      status: failed ? 'error' : counts.failed > 0 || this.manifestKeyWritten === null ? 'partial' : 'ok',
      stop_reason: stopReason,
      source: redactUrls(this.job.sourceUrl),
      bucket: this.job.bucket,
      region: this.job.region,
      prefix: this.job.prefix,
      reception: this.reception,
      decode: this.decodeReport(),
      timestamp_restarts: this.timeline.restarts,
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
    if (failed) result.error = { code: this.errorCode, message: redactUrls(this.firstError ?? 'capture failed') };
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

function formatOfSps(sps: SpsInfo): Omit<StreamFormat, 'header' | 'nalLengthSize'> {
  return {
    picture: { chromaFormat: sps.chromaFormat, bitDepth: Math.max(sps.bitDepthLuma, sps.bitDepthChroma), fullRange: sps.fullRange ?? false, matrix: sps.matrix },
    width: sps.width,
    height: sps.height,
  };
}

function changedFormat(format: StreamFormat, sps: SpsInfo): boolean {
  const next = formatOfSps(sps);
  return next.width !== format.width || next.height !== format.height || JSON.stringify(next.picture) !== JSON.stringify(format.picture);
}

/** The first SPS of an AVCDecoderConfigurationRecord. */
function firstSpsOf(record: Buffer): SpsInfo | undefined {
  if (record.length < 8 || (record[5]! & 0x1f) === 0) return undefined;
  const length = record.readUInt16BE(6);
  try {
    return parseSps(unescapeRbsp(record.subarray(9, 8 + length)));
  } catch {
    return undefined;
  }
}
