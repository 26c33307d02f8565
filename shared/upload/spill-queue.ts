import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import type { Logger } from '../log';
import { describeSpill, type StoreTarget } from './leftovers';

/**
 * A bounded FIFO of bytes bound for one object: memory first, moved to a local spill file when
 * storage fails or memory fills. The spill file is described next to it (object, position, file
 * offset) whenever what it holds changes, so the next invocation can finish it after a crash.
 * File I/O is synchronous on purpose: a description never lags the bytes it describes, and it
 * happens only while storage is failing (once per failed attempt, or when memory fills).
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
  /** The object's bucket, written into the description for recovery after a crash. */
  target: StoreTarget;
}

export interface SpillQueueOptions {
  key: string;
  contentType: string;
  memoryLimitBytes: number;
  spill?: SpillTarget;
  logger: Logger;
}

export class SpillQueue {
  private readonly memory: Buffer[] = [];
  private memoryBytes = 0;
  /** Spill file: bytes [diskRead, diskWritten) are pending, ahead of `memory`. */
  private diskRead = 0;
  private diskWritten = 0;
  private diskFd: number | undefined;
  /** Where the oldest pending byte belongs in the object. */
  private objectPosition = 0;

  constructor(private readonly options: SpillQueueOptions) {}

  get pendingBytes(): number {
    return this.memoryBytes + this.spilledBytes;
  }

  /** Pending bytes in the spill file. */
  get spilledBytes(): number {
    return this.diskWritten - this.diskRead;
  }

  /** Memory holds more than its limit (the spill file could not take it). */
  get memoryFull(): boolean {
    return this.memoryBytes > this.options.memoryLimitBytes;
  }

  push(piece: Buffer): void {
    this.memory.push(piece);
    this.memoryBytes += piece.length;
    if (this.memoryFull) this.spillMemory();
  }

  /** The next pending bytes (at most `maxBytes`, at least one piece), not removed: the spill file's first. */
  peek(maxBytes: number): Buffer {
    if (this.spilledBytes > 0) {
      const body = Buffer.allocUnsafe(Math.min(this.spilledBytes, maxBytes));
      readSync(this.diskFd!, body, 0, body.length, this.diskRead);
      return body;
    }
    const parts: Buffer[] = [];
    let bytes = 0;
    for (const piece of this.memory) {
      if (bytes > 0 && bytes + piece.length > maxBytes) break;
      parts.push(piece);
      bytes += piece.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** `bytes` from the front were stored; the object now ends at `objectPosition`. */
  consume(bytes: number, objectPosition: number): void {
    this.objectPosition = objectPosition;
    if (this.spilledBytes > 0) {
      this.diskRead += bytes;
      this.options.spill?.budget.release(bytes);
      if (this.diskRead === this.diskWritten) this.close(true);
      else this.describe();
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
  spillMemory(): void {
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
      this.describe();
    } catch (error) {
      spill.budget.release(moving);
      this.options.logger.warn('could not spill to disk; keeping the recording in memory', { key: this.options.key, error });
    }
  }

  /** Drops what is still in memory (it can go nowhere); returns how many bytes that was. */
  dropMemory(): number {
    const dropped = this.memoryBytes;
    this.memory.length = 0;
    this.memoryBytes = 0;
    return dropped;
  }

  /** Closes the spill file: removed (and its description) when nothing in it is pending any more. */
  close(remove: boolean): void {
    if (this.diskFd === undefined) return;
    closeSync(this.diskFd);
    this.diskFd = undefined;
    if (!remove) return;
    rmSync(this.options.spill!.path, { force: true });
    rmSync(`${this.options.spill!.path}.json`, { force: true });
    this.diskRead = 0;
    this.diskWritten = 0;
  }

  private describe(): void {
    const { spill, key, contentType } = this.options;
    describeSpill(spill!.path, { bucket: spill!.target.bucket, region: spill!.target.region, key, contentType, position: this.objectPosition, fileOffset: this.diskRead });
  }
}
