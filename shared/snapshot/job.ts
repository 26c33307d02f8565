import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CallbackOutcome } from '../callback';
import { outcomeOf, type ErrorOutcome } from '../errors';
import { runJob, type JobContext, type JobRuntime, type LifecycleStopReason } from '../job/lifecycle';
import { utcStamp } from '../naming';
import type { ImageFormat } from '../outputs/images/format';
import { ImageSink } from '../outputs/images/image-sink';
import { StreamRecorder, streamRecordContentType, type StreamPiece, type StreamRecordFormat } from '../outputs/recording/stream-copy';
import { redactUrls } from '../redact';
import type { ReceptionPath } from '../sources/video-source';
import { GrowingObjectUpload } from '../upload/growing-object';
import type { ImageRecord } from '../upload/image-uploader';
import { AppendJournal } from '../upload/journal';
import { SPILL_SUFFIX } from '../upload/leftovers';
import { journalKey, latestKey, manifestKey, snapshotKey } from './keys';
import { LiveStream, type ConnectionConsumer } from './live-stream';
import { PictureSelector, type WrittenImage } from './picture-selector';
import { recoverSnapshots, type SnapshotRecoveryInfo } from './recovery';
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
  /** Also record the stream as received (stream copy) into `{prefix}{start}.{record}`. */
  record?: StreamRecordFormat;
  /** A recording object ends at the first keyframe after this long; the next one starts there. */
  recordMaxDurationSec?: number;
}

export interface SnapshotRuntime extends JobRuntime {
  uploadConcurrency?: number;
  onProgress?: (progress: SnapshotCounts & { elapsedMs: number }) => void;
}

/** Stops the snapshot job decides itself (the lifecycle's aside). */
type SnapshotOwnStopReason = 'ended' | 'idle' | 'max_duration' | 'max_snapshots' | 'error';
export type StopReason = SnapshotOwnStopReason | LifecycleStopReason;

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

/** One object of the stream's recording (the result's and the manifest's entry). */
export interface StreamRecordingEntry {
  key: string;
  format: StreamRecordFormat;
  started_at: string;
  /** Seconds of video in it. */
  duration: number;
  /** Bytes stored. */
  bytes: number;
  audio: boolean;
  /** stored; partial (some bytes only on the instance, for the next invocation, or lost); failed. */
  status: 'stored' | 'partial' | 'failed';
  message: string;
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
  /** With `record`: each object of the recording. */
  recordings?: StreamRecordingEntry[];
  started_at: string;
  ended_at: string;
  error?: ErrorOutcome;
  callback?: CallbackOutcome;
}

/** Results list this many discarded images; all are counted. */
const MAX_DISCARDED_LISTED = 100;

/**
 * Pulls a live stream and stores a snapshot every `intervalSec`, uploading each as soon as it
 * is written (and, with `record`, the stream itself as it arrives). Never throws for stream or
 * storage trouble: the result says what happened, and the callback (if any) gets the same result.
 */
export function runSnapshotJob(job: SnapshotJob, runtime: SnapshotRuntime): Promise<SnapshotResult> {
  const recoveryInfo: SnapshotRecoveryInfo = { bucket: job.bucket, region: job.region, prefix: job.prefix, format: job.format, intervalSec: job.intervalSec, requestId: job.requestId };
  return runJob<SnapshotRecoveryInfo, SnapshotResult, SnapshotOwnStopReason>(runtime, {
    kind: 'snapshot',
    requestId: job.requestId,
    recoveryInfo,
    recoverOwn: recoverSnapshots,
    run: (context) => new SnapshotCapture(job, runtime, context).run(),
  });
}

/** A stored (or to-be-stored) snapshot, with what the manifest says of it. */
interface SnapshotRecord extends ImageRecord {
  /** Seconds on the source's clock within its connection (run). */
  streamTime: number;
  run: number;
  /** When the picture's packet reached us (ms): how fresh the image is. */
  receivedAt: number;
  decodedFrom: 'keyframe' | 'gop';
}

class SnapshotCapture {
  private readonly discarded: DiscardedImage[] = [];
  private readonly images: ImageSink<SnapshotRecord>;
  private readonly journal: AppendJournal;
  private readonly stream: LiveStream;
  private readonly selector: PictureSelector;
  private readonly timeline = new StreamTimeline();
  private readonly recorder: StreamRecorder | undefined;
  private recordings: StreamPiece[] = [];
  private error: ErrorOutcome | undefined;
  private readonly startedAt = Date.now();
  private manifestKeyWritten: string | null = null;

  constructor(
    private readonly job: SnapshotJob,
    private readonly runtime: SnapshotRuntime,
    private readonly context: JobContext<SnapshotOwnStopReason>,
  ) {
    this.journal = new AppendJournal(runtime.store, journalKey(job.prefix), { logger: this.context.log, signal: context.storageSignal });
    this.images = new ImageSink<SnapshotRecord>({
      store: runtime.store,
      target: job,
      context,
      format: job.format,
      concurrency: runtime.uploadConcurrency ?? 4,
      latestKey: job.latest ? latestKey(job.prefix, job.format) : undefined,
      journalKey: journalKey(job.prefix),
      journalEntry: (record) => this.manifestEntry(record),
      onSettled: (record) => {
        if (record.status === 'uploaded') this.journal.add(this.manifestEntry(record));
        this.reportProgress();
      },
    });
    this.stream = new LiveStream({
      url: job.sourceUrl,
      idleTimeoutSec: job.idleTimeoutSec,
      connectTimeoutSec: job.connectTimeoutSec,
      ffmpegPath: runtime.ffmpegPath,
      env: context.env,
      logger: this.context.log,
      wantsAudio: job.record !== undefined,
    });
    this.selector = new PictureSelector({
      intervalSec: job.intervalSec,
      format: job.format,
      width: job.width,
      quality: job.quality,
      ffmpegPath: runtime.ffmpegPath,
      workDir: context.workDir,
      env: context.env,
      logger: this.context.log,
      maxChosen: job.maxSnapshots,
      onEnoughChosen: () => this.context.stop('max_snapshots'),
      onImagerFailing: (message) => this.fail({ code: 'ImagerFailed', message }),
      onImage: (image) => this.take(image),
    });
    this.recorder = job.record ? this.newRecorder(job.record) : undefined;
  }

  async run(): Promise<SnapshotResult> {
    const limits = this.job.maxDurationSec === undefined ? [] : [{ atMs: this.startedAt + this.job.maxDurationSec * 1000, reason: 'max_duration' as const }];
    this.context.armStops(() => this.stream.stop(), limits);
    try {
      const end = await this.stream.read(() => this.connection());
      if (end.reason === 'failed') this.fail(end.error);
      else if (end.reason !== 'stopped') this.context.ended(end.reason);
    } catch (error) {
      // A bug or an unexpected system failure: still flush what was captured.
      this.context.log.error('capture failed', { error });
      this.fail(outcomeOf(error, 'SourceUnavailable'));
    } finally {
      this.context.workEnded();
      await this.selector.finish();
    }
    await Promise.all([this.flush(), this.finishRecording()]);
    await this.writeManifest();
    return this.finish();
  }

  /** One connection's packets: timeline times, then pictures to the selector and tags to the recorder. */
  private connection(): ConnectionConsumer {
    this.timeline.newConnection();
    const pictures = this.selector.connection();
    return {
      video: (tag, info) => {
        if (info.avcPacketType === 0) {
          this.recorder?.videoSequenceHeader(tag);
          return this.selector.sequenceHeader(pictures, tag);
        }
        if (info.avcPacketType !== 1 || this.context.stopReason) return;
        const now = Date.now();
        const dtsMs = this.timeline.mapDts(tag.dts, now);
        const ptsMs = dtsMs + (info.pts - tag.dts);
        this.recorder?.video(tag, info.keyframe, dtsMs, ptsMs, now);
        this.selector.picture(pictures, tag, info, dtsMs, ptsMs, now);
      },
      audio: this.recorder ? (tag) => this.recorder!.audio(tag, this.timeline.timeOf(tag.dts)) : undefined,
      closed: () => this.selector.closeConnection(pictures),
    };
  }

  private newRecorder(format: StreamRecordFormat): StreamRecorder {
    return new StreamRecorder({
      format,
      logger: this.context.log,
      maxPieceMs: this.job.recordMaxDurationSec === undefined ? undefined : this.job.recordMaxDurationSec * 1000,
      openPiece: (index, startedAt) =>
        new GrowingObjectUpload({
          store: this.runtime.store,
          key: `${this.job.prefix}${utcStamp(startedAt)}.${format}`,
          contentType: streamRecordContentType(format),
          logger: this.context.log,
          giveUpAt: () => this.context.giveUpAt(),
          signal: this.context.storageSignal,
          spill: { path: join(this.context.workDir, `recording-${index}${SPILL_SUFFIX}`), budget: this.context.spill, target: this.job },
        }),
    });
  }

  /** Closes the recording's last object; spill files not stored yet stay for the next invocation. */
  private async finishRecording(): Promise<void> {
    if (!this.recorder) return;
    this.recordings = await this.recorder.stop();
    this.context.leftovers += this.recordings.filter((piece) => piece.upload.spilledBytes > 0).length;
  }

  private fail(error: ErrorOutcome): void {
    this.error ??= error;
    this.context.stop('error');
  }

  /** An image the imager wrote: stored when it is a whole image of a chosen picture, else discarded. */
  private async take(image: WrittenImage): Promise<void> {
    const { filePath, chosen, run, streamTime } = image;
    const outcome = chosen
      ? await this.images.take(filePath, (facts) => ({
          ...facts,
          key: snapshotKey(this.job.prefix, chosen.slotTimeMs, this.job.format, this.job.intervalSec < 1),
          timeMs: chosen.slotTimeMs,
          streamTime,
          run,
          receivedAt: chosen.receivedAt,
          decodedFrom: chosen.fromKeyframe ? 'keyframe' : 'gop',
        }))
      : await this.notAskedFor(filePath);
    if ('problem' in outcome) {
      const entry = { run, stream_time: Number(streamTime.toFixed(3)), reason: outcome.problem };
      if (this.discarded.length < MAX_DISCARDED_LISTED) this.discarded.push(entry);
      this.journal.add({ status: 'discarded', ...entry, request_id: this.job.requestId });
      this.context.log.warn('image discarded', { ...entry });
    }
    this.reportProgress();
  }

  /** An image the imager wrote for no chosen picture: not the source's picture at a slot. */
  private async notAskedFor(filePath: string): Promise<{ problem: string }> {
    this.images.discarded++;
    await rm(filePath, { force: true });
    return { problem: 'not a picture that was asked for' };
  }

  private reportProgress(): void {
    this.runtime.onProgress?.({ ...this.counts(), elapsedMs: Date.now() - this.startedAt });
  }

  private counts(): SnapshotCounts {
    return { ...this.images.counts, shed: this.selector.shed + (this.recorder?.picturesShed ?? 0) };
  }

  private decodeReport(): DecodeReport {
    const fromKeyframes = this.images.records.filter((record) => record.decodedFrom === 'keyframe').length;
    return {
      images_from_keyframes: fromKeyframes,
      images_from_gop: this.images.records.length - fromKeyframes,
      reference_pictures_decoded: this.selector.plannerCounts.referencesFed,
      pictures_skipped: this.selector.plannerCounts.skipped,
      gop_decoding_since: this.selector.firstGopImageAt === undefined ? null : new Date(this.selector.firstGopImageAt).toISOString(),
    };
  }

  private async flush(): Promise<void> {
    await this.images.finish();
    await this.journal.close();
  }

  private async writeManifest(): Promise<void> {
    const key = manifestKey(this.job.prefix);
    try {
      await this.runtime.store.putBuffer(key, Buffer.from(JSON.stringify(this.manifest(), null, 2)), { contentType: 'application/json', signal: this.context.storageSignal });
      this.manifestKeyWritten = key;
    } catch (error) {
      this.context.log.error('manifest upload failed', { key, error });
    }
  }

  private manifestEntry(record: SnapshotRecord) {
    return {
      key: record.key,
      stream_time: Number(record.streamTime.toFixed(3)),
      run: record.run,
      wall_time: new Date(record.timeMs).toISOString(),
      received_at: new Date(record.receivedAt).toISOString(),
      written_at: new Date(record.writtenAt).toISOString(),
      uploaded_at: record.uploadedAt === undefined ? null : new Date(record.uploadedAt).toISOString(),
      bytes: record.bytes ?? null,
      status: record.status,
      decoded_from: record.decodedFrom,
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
      stop_reason: this.context.stopReason,
      counts: this.counts(),
      decode: this.decodeReport(),
      snapshots: this.images.records.map((record) => this.manifestEntry(record)),
      discarded: this.discarded,
      ...(this.recorder ? { recordings: this.recordingEntries() } : {}),
    };
  }

  private recordingEntries(): StreamRecordingEntry[] {
    return this.recordings.map((piece) => {
      const { upload } = piece;
      const complete = upload.objectExists && upload.lostBytes === 0 && upload.spilledBytes === 0 && !upload.error && !piece.error;
      const problems = [
        piece.error ? `the recording stopped: ${piece.error}` : undefined,
        upload.error ? `storing failed: ${upload.error}` : undefined,
        upload.spilledBytes > 0 ? `${upload.spilledBytes} bytes kept on the instance for the next invocation to store` : undefined,
        upload.lostBytes > 0 ? `${upload.lostBytes} bytes could not be stored and are lost` : undefined,
      ].filter((problem): problem is string => problem !== undefined);
      return {
        key: upload.key,
        format: this.job.record!,
        started_at: new Date(piece.startedAt).toISOString(),
        duration: Number(piece.durationSec.toFixed(3)),
        bytes: upload.storedBytes,
        audio: piece.audio,
        status: complete ? 'stored' : upload.objectExists ? 'partial' : 'failed',
        message: complete ? (upload.mode === 'multipart' ? 'stored as a multipart upload (the bucket refuses appends)' : 'ok') : problems.join('; ') || 'nothing was stored',
      };
    });
  }

  private async finish(): Promise<SnapshotResult> {
    const counts = this.counts();
    const stopReason = this.context.stopReason ?? 'error';
    let error = this.error;
    // Nothing stored is never a success, whatever ended the capture.
    if (stopReason !== 'error' && counts.uploaded === 0) {
      const message = this.stream.lastPacketAt === undefined
        ? (this.stream.lastFailure ?? 'no video arrived from the source')
        : counts.taken > 0
          ? 'no snapshot could be stored'
          : 'video arrived, but no picture could be decoded from it before the capture ended';
      error = { code: counts.taken > 0 ? 'StorageError' : 'NothingCaptured', message };
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
      reception: this.stream.reception,
      decode: this.decodeReport(),
      timestamp_restarts: this.timeline.restarts,
      counts,
      failed_keys: this.images.records.filter((record) => record.status !== 'uploaded').map((record) => record.key),
      discarded: this.discarded,
      first_key: this.images.records[0]?.key ?? null,
      last_key: this.images.records.at(-1)?.key ?? null,
      manifest_key: this.manifestKeyWritten,
      journal_key: this.journal.linesWritten > 0 ? this.journal.key : null,
      ...(this.recorder ? { recordings: this.recordingEntries() } : {}),
      started_at: new Date(this.startedAt).toISOString(),
      ended_at: new Date().toISOString(),
    };
    if (failed) result.error = { code: error?.code ?? 'SourceUnavailable', message: redactUrls(error?.message ?? 'capture failed') };
    if (this.job.callbackUrl) {
      result.callback = await this.context.sendCallback(this.job.callbackUrl, result);
      result.ended_at = new Date().toISOString();
    }
    return result;
  }
}

