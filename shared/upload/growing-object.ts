import { PassThrough } from 'node:stream';
import { isRetryable } from '../errors';
import type { Logger } from '../log';
import { OUTAGE_RETRY, STORAGE_REQUEST_RETRY, withRetry } from '../retry';
import { isAppendRefused, positionMismatch, type ObjectStore, type PutResult } from '../storage/types';
import { SpillQueue, type SpillTarget } from './spill-queue';

export { spillBudget, type SpillBudget, type SpillTarget } from './spill-queue';

/**
 * Stores a recording while it is being made: each piece the encoder finishes (an MP4 fragment,
 * MP3 frames) is appended to one object every few seconds, so the object is always a playable
 * file of everything appended so far, and a crash loses only what was not appended yet.
 *
 * What is not stored yet waits in a bounded FIFO: memory first, moved to a local spill file when
 * storage fails or memory fills; the spill file names the object and position it belongs at, so
 * the next invocation can finish it after a crash. When both are full, write() says so and the
 * caller stops feeding (its encoder then blocks, and the recorder sheds frames).
 *
 * A bucket that refuses appends (versioned, multi-AZ) gets a multipart upload streamed during
 * the recording and completed at the end: its parts are invisible until then, so a crash loses
 * the whole piece unless the upload is completed by hand.
 */

export interface GrowingObjectOptions {
  store: ObjectStore;
  key: string;
  contentType: string;
  logger: Logger;
  /** Epoch ms after which failed requests are not tried again. */
  giveUpAt: () => number;
  /** Waits between retries end early when this aborts. */
  signal?: AbortSignal;
  /** Least time between appends, so small pieces (MP3 frames) are batched. */
  appendIntervalMs?: number;
  /** Memory for what is not stored yet; beyond it, pieces go to the spill file. */
  memoryLimitBytes?: number;
  /** Called once, when the object's first bytes are stored (appended; a multipart upload shows none until it completes). */
  onFirstStored?: () => void;
  spill?: SpillTarget;
}

export interface GrowingObjectResult {
  key: string;
  mode: 'append' | 'multipart';
  /** Bytes the object holds. */
  storedBytes: number;
  /** Bytes that could not be stored and are gone. */
  lostBytes: number;
  /** Bytes left in the spill file for the next invocation to store. */
  spilledBytes: number;
  /** Whether the object exists (something was stored). */
  objectExists: boolean;
  error?: string;
}

const DEFAULT_APPEND_INTERVAL_MS = 2_000;
const DEFAULT_MEMORY_LIMIT_BYTES = 8 * 1024 * 1024;
/** Larger appends are split: one request per this many bytes at most. */
const MAX_APPEND_BYTES = 16 * 1024 * 1024;
const BACKOFF_MAX_MS = 5_000;

/** The append was refused because the bucket takes no appends: switch to a multipart upload. */
class AppendsRefused extends Error {}

/** Ends an upload and says how it went; never rejects (a failure is in the result). */
export async function finishUpload(upload: GrowingObjectUpload): Promise<GrowingObjectResult> {
  try {
    return await upload.end();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { key: upload.key, mode: 'append', storedBytes: 0, lostBytes: upload.pendingBytes, spilledBytes: 0, objectExists: false, error: message };
  }
}

export class GrowingObjectUpload {
  private readonly queue: SpillQueue;
  private position = 0;
  private mode: 'append' | 'multipart' | 'failed' = 'append';
  private multipart: { stream: PassThrough; done: Promise<PutResult | Error> } | undefined;
  /** Bytes handed to the multipart stream, and whether what was pending before the switch is in it. */
  private multipartBytes = 0;
  private multipartCaughtUp = false;
  private ending = false;
  private error: string | undefined;
  private lostBytes = 0;
  private wake: (() => void) | undefined;
  private roomWaiters: Array<() => void> = [];
  private readonly pump: Promise<void>;
  private lastAppendAt = 0;

  constructor(private readonly options: GrowingObjectOptions) {
    this.queue = new SpillQueue({ key: options.key, contentType: options.contentType, memoryLimitBytes: this.memoryLimit, spill: options.spill, logger: options.logger });
    // Nothing here may become an unhandled rejection: that would end the whole process.
    this.pump = this.run().catch((error: unknown) => this.fail(error));
  }

  get key(): string {
    return this.options.key;
  }

  /** Bytes accepted and not stored yet. */
  get pendingBytes(): number {
    return this.queue.pendingBytes;
  }

  /** Bytes stored so far plus pending: the size the object is heading for. */
  get totalBytes(): number {
    return this.position + this.pendingBytes;
  }

  /** Takes the next whole piece. False: the buffers are full; wait for room() before the next. */
  write(piece: Buffer): boolean {
    if (piece.length === 0) return this.hasRoom();
    if (this.mode === 'failed') {
      this.lostBytes += piece.length;
      return true;
    }
    // Straight into the multipart stream once what was pending before the switch has gone in.
    if (this.mode === 'multipart' && this.multipartCaughtUp) {
      this.multipartBytes += piece.length;
      return this.multipart!.stream.write(piece) || this.hasRoom();
    }
    const wasEmpty = this.queue.pendingBytes === 0;
    this.queue.push(piece);
    // The pump sleeps between appends: a write wakes it only when it waits for data or a whole
    // append is ready, not for every small piece (a timer and a promise each).
    if (wasEmpty || this.queue.pendingBytes >= MAX_APPEND_BYTES) this.wake?.();
    return this.hasRoom();
  }

  /** Resolves when write() would take more. */
  room(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    if (this.mode === 'multipart' && this.multipartCaughtUp) return this.multipartDrained();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** The multipart stream took its buffer, or the upload is over (a failed one never drains). */
  private multipartDrained(): Promise<void> {
    const { stream, done } = this.multipart!;
    return Promise.race([new Promise<void>((resolve) => stream.once('drain', () => resolve())), done.then(() => undefined)]);
  }

  /** No more pieces: stores what is pending (retrying until giveUpAt) and says how it went. */
  async end(): Promise<GrowingObjectResult> {
    this.ending = true;
    this.wake?.();
    await this.pump;
    let storedBytes = this.position;
    if (this.multipart) {
      this.multipart.stream.end();
      const outcome = await this.multipart.done;
      if (outcome instanceof Error) {
        this.error = outcome.message;
        this.lostBytes += this.multipartBytes;
        storedBytes = 0;
      } else {
        storedBytes = this.multipartBytes;
      }
      // Pieces written after a multipart failure were counted as lost on arrival.
    }
    const spilledBytes = this.queue.spilledBytes;
    this.queue.close(spilledBytes === 0);
    return {
      key: this.options.key,
      mode: this.multipart ? 'multipart' : 'append',
      storedBytes,
      lostBytes: this.lostBytes + this.queue.dropMemory(),
      spilledBytes,
      objectExists: storedBytes > 0,
      ...(this.error ? { error: this.error } : {}),
    };
  }

  private get memoryLimit(): number {
    return this.options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES;
  }

  private hasRoom(): boolean {
    // Given up: what comes is counted as lost, so the encoder is never held back for nothing.
    if (this.mode === 'failed') return true;
    if (this.mode === 'multipart' && this.multipartCaughtUp) return this.multipart!.stream.writableLength < this.memoryLimit;
    return !this.queue.memoryFull;
  }

  private async run(): Promise<void> {
    while (this.mode === 'append') {
      if (this.pendingBytes === 0) {
        if (this.ending) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      // Batch small pieces: wait out the interval unless ending or much is pending.
      const waitMs = this.lastAppendAt + (this.options.appendIntervalMs ?? DEFAULT_APPEND_INTERVAL_MS) - Date.now();
      if (!this.ending && waitMs > 0 && this.pendingBytes < MAX_APPEND_BYTES) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        continue;
      }
      await this.appendNext();
    }
    if (this.mode === 'multipart') {
      // Everything pending goes into the multipart stream, in order.
      while (this.pendingBytes > 0) {
        const body = this.queue.peek(MAX_APPEND_BYTES);
        this.multipartBytes += body.length;
        this.queue.consume(body.length, this.position);
        if (!this.multipart!.stream.write(body)) await this.multipartDrained();
      }
      this.multipartCaughtUp = true;
      this.releaseRoom();
    }
  }

  /** One append of the next pending bytes, retried (spilling meanwhile) until it lands or giveUpAt passes. */
  private async appendNext(): Promise<void> {
    const body = this.queue.peek(MAX_APPEND_BYTES);
    const { store, key, contentType, signal, logger } = this.options;
    let hopeless = false;
    try {
      await withRetry(
        async () => {
          try {
            this.landed(body.length, (await store.append(key, body, this.position, { contentType, retry: STORAGE_REQUEST_RETRY, signal })).nextPosition);
          } catch (error) {
            const length = positionMismatch(error);
            // An earlier attempt was applied but its answer lost (the store's resync covers most of these).
            if (length === this.position + body.length) return this.landed(body.length, length);
            if (isAppendRefused(error) && this.position === 0) throw new AppendsRefused();
            // A length other than ours or ours plus this body: someone else wrote to the object. A
            // refusal (credentials, no such bucket) will not pass by waiting.
            hopeless = (length !== undefined && length !== this.position) || (length === undefined && !isRetryable(error));
            throw error;
          }
        },
        {
          policy: OUTAGE_RETRY,
          signal,
          shouldRetry: (error) => !(error instanceof AppendsRefused) && !hopeless && Date.now() < this.options.giveUpAt(),
          onRetry: ({ attempt, error }) => {
            if (attempt === 1) logger.warn('storing the recording is failing; keeping it until storage is back', { key, error });
            // Storage is down: what waits in memory moves to disk, where it outlives us.
            this.queue.spillMemory();
            this.releaseRoom();
          },
        },
      );
    } catch (error) {
      if (error instanceof AppendsRefused) return this.switchToMultipart();
      this.fail(error);
    }
  }

  private landed(bytes: number, nextPosition: number): void {
    if (this.position === 0 && nextPosition > 0) this.options.onFirstStored?.();
    this.position = nextPosition;
    this.queue.consume(bytes, nextPosition);
    this.lastAppendAt = Date.now();
    this.releaseRoom();
  }

  private fail(error: unknown): void {
    this.mode = 'failed';
    this.error = error instanceof Error ? error.message : String(error);
    this.options.logger.error('the recording could not be stored', { key: this.options.key, error });
    // What is on disk stays for the next invocation; memory is moved there too if it fits, and
    // counted as lost if it does not.
    this.queue.spillMemory();
    this.lostBytes += this.queue.dropMemory();
    this.releaseRoom();
  }

  private switchToMultipart(): void {
    this.options.logger.warn('the bucket refuses appends; uploading this recording in parts, completed at the end', { key: this.options.key });
    this.mode = 'multipart';
    const stream = new PassThrough({ highWaterMark: this.memoryLimit });
    const done = this.options.store
      .putStream(this.options.key, stream, {
        contentType: this.options.contentType,
        retry: { maxAttempts: Number.MAX_SAFE_INTEGER, baseDelayMs: 500, maxDelayMs: BACKOFF_MAX_MS, maxElapsedMs: Math.max(0, this.options.giveUpAt() - Date.now()) },
        signal: this.options.signal,
      })
      .catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
    this.multipart = { stream, done };
    void done.then((outcome) => {
      if (outcome instanceof Error) {
        this.mode = 'failed';
        this.error = outcome.message;
        this.releaseRoom();
      }
    });
  }

  private releaseRoom(): void {
    if (!this.hasRoom()) return;
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }
}
