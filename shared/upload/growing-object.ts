import { closeSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { isRetryable } from '../errors';
import type { Logger } from '../log';
import { sleep } from '../retry';
import { isAppendRefused, positionMismatch, type ObjectStore, type PutResult } from '../storage/types';

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

export interface SpillBudget {
  /** Whether `bytes` more may go to disk; counts them when so. */
  reserve(bytes: number): boolean;
  release(bytes: number): void;
}

/** A byte budget shared by every upload of a job (the disk under the work dir is one). */
export function spillBudget(limitBytes: number): SpillBudget {
  let used = 0;
  return {
    reserve(bytes) {
      if (used + bytes > limitBytes) return false;
      used += bytes;
      return true;
    },
    release(bytes) {
      used = Math.max(0, used - bytes);
    },
  };
}

export interface SpillTarget {
  /** Where the spill file goes (the job's work dir). */
  path: string;
  budget: SpillBudget;
  /** Written next to the spill file (with the object position), for recovery after a crash. */
  describe: Record<string, unknown>;
}

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
/** A short per-request policy; the loop here retries until giveUpAt, spilling meanwhile. */
const REQUEST_RETRY = { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 1_000, maxElapsedMs: 5_000 };
const BACKOFF_MAX_MS = 5_000;

export class GrowingObjectUpload {
  private readonly memory: Buffer[] = [];
  private memoryBytes = 0;
  /** Spill file: bytes [diskRead, diskWritten) are pending, ahead of `memory`. */
  private diskRead = 0;
  private diskWritten = 0;
  private diskFd: number | undefined;
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
    // Nothing here may become an unhandled rejection: that would end the whole process.
    this.pump = this.run().catch((error: unknown) => this.fail(error));
  }

  get key(): string {
    return this.options.key;
  }

  /** Bytes accepted and not stored yet. */
  get pendingBytes(): number {
    return this.memoryBytes + this.diskWritten - this.diskRead;
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
    this.memory.push(piece);
    this.memoryBytes += piece.length;
    if (this.memoryBytes > this.memoryLimit) this.moveMemoryToDisk();
    this.wake?.();
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
    const spilledBytes = this.diskWritten - this.diskRead;
    this.closeDisk(spilledBytes === 0);
    return {
      key: this.options.key,
      mode: this.multipart ? 'multipart' : 'append',
      storedBytes,
      lostBytes: this.lostBytes + this.memoryBytes,
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
    return this.memoryBytes <= this.memoryLimit;
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
        const body = this.peekNext();
        this.multipartBytes += body.length;
        this.consume(body.length);
        if (!this.multipart!.stream.write(body)) await this.multipartDrained();
      }
      this.multipartCaughtUp = true;
      this.releaseRoom();
    }
  }

  /** One append of the next pending bytes, retried (spilling meanwhile) until it lands or giveUpAt passes. */
  private async appendNext(): Promise<void> {
    const body = this.peekNext();
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.options.store.append(this.options.key, body, this.position, {
          contentType: this.options.contentType,
          retry: REQUEST_RETRY,
          signal: this.options.signal,
        });
        this.landed(body.length, result.nextPosition);
        return;
      } catch (error) {
        const length = positionMismatch(error);
        // An earlier attempt was applied but its answer lost (the store's resync covers most of these).
        if (length === this.position + body.length) return this.landed(body.length, length);
        if (isAppendRefused(error) && this.position === 0) return this.switchToMultipart();
        const outOfTime = Date.now() >= this.options.giveUpAt() || this.options.signal?.aborted;
        // A length other than ours or ours plus this body: someone else wrote to the object. A
        // refusal (credentials, no such bucket) will not pass by waiting.
        const hopeless = (length !== undefined && length !== this.position) || (length === undefined && !isRetryable(error));
        if (hopeless || outOfTime) return this.fail(error);
        if (attempt === 1) this.options.logger.warn('storing the recording is failing; keeping it until storage is back', { key: this.options.key, error });
        // Storage is down: what waits in memory moves to disk, where it outlives us.
        this.moveMemoryToDisk();
        await sleep(Math.min(BACKOFF_MAX_MS, 250 * 2 ** Math.min(attempt, 5)), this.options.signal);
      }
    }
  }

  private landed(bytes: number, nextPosition: number): void {
    // Position first: consume() records it with the spill file's new offset.
    this.position = nextPosition;
    this.consume(bytes);
    this.lastAppendAt = Date.now();
    this.releaseRoom();
  }

  private fail(error: unknown): void {
    this.mode = 'failed';
    this.error = error instanceof Error ? error.message : String(error);
    this.options.logger.error('the recording could not be stored', { key: this.options.key, error });
    // What is on disk stays for the next invocation; memory is moved there too if it fits, and
    // counted as lost if it does not.
    this.moveMemoryToDisk();
    this.lostBytes += this.memoryBytes;
    this.memory.length = 0;
    this.memoryBytes = 0;
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

  /** The next pending bytes, not removed: from the spill file first (it is older), then memory. */
  private peekNext(): Buffer {
    const onDisk = this.diskWritten - this.diskRead;
    if (onDisk > 0) {
      const body = Buffer.allocUnsafe(Math.min(onDisk, MAX_APPEND_BYTES));
      readSync(this.diskFd!, body, 0, body.length, this.diskRead);
      return body;
    }
    const parts: Buffer[] = [];
    let bytes = 0;
    for (const piece of this.memory) {
      if (bytes > 0 && bytes + piece.length > MAX_APPEND_BYTES) break;
      parts.push(piece);
      bytes += piece.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private consume(bytes: number): void {
    const onDisk = this.diskWritten - this.diskRead;
    if (onDisk > 0) {
      this.diskRead += bytes;
      this.options.spill?.budget.release(bytes);
      if (this.diskRead === this.diskWritten) this.closeDisk(true);
      else this.describeSpill();
      return;
    }
    let left = bytes;
    while (left > 0) {
      const piece = this.memory.shift()!;
      left -= piece.length;
      this.memoryBytes -= piece.length;
    }
  }

  /** Moves every pending byte in memory to the end of the spill file, if the budget allows. */
  private moveMemoryToDisk(): void {
    const spill = this.options.spill;
    if (!spill || this.memoryBytes === 0 || !spill.budget.reserve(this.memoryBytes)) return;
    const moving = this.memoryBytes;
    try {
      if (this.diskFd === undefined) {
        this.diskFd = openSync(spill.path, 'w+');
        this.diskRead = 0;
        this.diskWritten = 0;
      }
      // Written in full before memory lets go of it: a failed write (a full disk) leaves it in memory.
      let written = this.diskWritten;
      for (const piece of this.memory) written += writeSync(this.diskFd, piece, 0, piece.length, written);
      this.diskWritten = written;
      this.memory.length = 0;
      this.memoryBytes = 0;
      this.describeSpill();
    } catch (error) {
      spill.budget.release(moving);
      this.options.logger.warn('could not spill to disk; keeping the recording in memory', { key: this.options.key, error });
    }
    this.releaseRoom();
  }

  /** Where the spill file's pending bytes belong, for a recovery after a crash. */
  private describeSpill(): void {
    const spill = this.options.spill!;
    writeFileSync(`${spill.path}.json`, JSON.stringify({ ...spill.describe, key: this.options.key, contentType: this.options.contentType, position: this.position, fileOffset: this.diskRead }));
  }

  private closeDisk(remove: boolean): void {
    if (this.diskFd === undefined) return;
    closeSync(this.diskFd);
    this.diskFd = undefined;
    if (remove) {
      rmSync(this.options.spill!.path, { force: true });
      rmSync(`${this.options.spill!.path}.json`, { force: true });
      this.diskRead = 0;
      this.diskWritten = 0;
    }
  }

  private releaseRoom(): void {
    if (!this.hasRoom()) return;
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }
}
