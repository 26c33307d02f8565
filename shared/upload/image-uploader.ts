import { rm, stat } from 'node:fs/promises';
import type { Logger } from '../log';
import type { ObjectStore } from '../storage/types';

/** One image to store; jobs extend it with what they report of each. */
export interface ImageRecord {
  seq: number;
  key: string;
  /** The moment the key names (ms). */
  timeMs: number;
  /** When ffmpeg finished writing the file (ms, file mtime). */
  writtenAt: number;
  uploadedAt?: number;
  bytes?: number;
  attempts: number;
  status: 'pending' | 'uploaded' | 'failed';
  error?: string;
}

export interface UploaderOptions<R extends ImageRecord> {
  contentType: string;
  concurrency: number;
  /** Also overwrite this key with the newest snapshot. */
  latestKey?: string;
  /** Aborts retry waits once the flush budget is spent. */
  signal?: AbortSignal;
  logger: Logger;
  onSettled?: (record: R) => void;
}

interface Task<R> {
  record: R;
  filePath: string;
}

/**
 * Uploads images (the snapshot function's, and a recording's snapshots) as they appear, a few at
 * a time, and deletes each local file once stored, so disk holds only what is not yet uploaded. A
 * failed image keeps its file for one more try at flush time.
 */
export class ImageUploader<R extends ImageRecord = ImageRecord> {
  private readonly queue: Task<R>[] = [];
  private readonly failed: Task<R>[] = [];
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  private newestLatestSeq = -1;
  private uploadedCount = 0;
  private latestChain: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: ObjectStore,
    private readonly options: UploaderOptions<R>,
  ) {}

  enqueue(record: R, filePath: string): void {
    this.queue.push({ record, filePath });
    this.pump();
  }

  /** Snapshots stored, and snapshots whose last attempt failed. */
  get counts(): { uploaded: number; failed: number } {
    return { uploaded: this.uploadedCount, failed: this.failed.length };
  }

  /** Resolves when nothing is queued or in flight. */
  async drain(): Promise<void> {
    if (this.active > 0 || this.queue.length > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.latestChain;
  }

  /** Images whose last attempt failed, with the local file each still has. */
  get failedFiles(): Array<{ record: R; filePath: string }> {
    return this.failed.map(({ record, filePath }) => ({ record, filePath }));
  }

  /** One more pass over the snapshots whose upload failed. */
  async retryFailed(): Promise<void> {
    const retry = this.failed.splice(0);
    for (const task of retry) this.queue.push(task);
    this.pump();
    await this.drain();
  }

  private pump(): void {
    while (this.active < this.options.concurrency && this.queue.length > 0) {
      const task = this.queue.shift()!;
      this.active++;
      void this.upload(task).finally(() => {
        this.active--;
        this.pump();
        if (this.active === 0 && this.queue.length === 0) {
          for (const resolve of this.idleWaiters.splice(0)) resolve();
        }
      });
    }
  }

  private async upload(task: Task<R>): Promise<void> {
    const { record, filePath } = task;
    const options = { contentType: this.options.contentType, signal: this.options.signal };
    try {
      record.bytes ??= (await stat(filePath)).size;
      const result = await this.store.putFile(record.key, filePath, options);
      record.attempts += result.attempts;
      record.uploadedAt = Date.now();
      record.status = 'uploaded';
      this.uploadedCount++;
      delete record.error;
      if (this.options.latestKey && record.seq > this.newestLatestSeq) {
        this.newestLatestSeq = record.seq;
        await this.updateLatest(record, filePath);
      }
      await rm(filePath, { force: true });
    } catch (error) {
      record.attempts += (error as { attempts?: number }).attempts ?? 1;
      record.status = 'failed';
      record.error = error instanceof Error ? error.message : String(error);
      this.failed.push(task);
      this.options.logger.warn('snapshot upload failed', { key: record.key, attempts: record.attempts, error });
    }
    this.options.onSettled?.(record);
  }

  /** Serialised, and skipped when a newer snapshot has already taken `latest`. */
  private updateLatest(record: R, filePath: string): Promise<void> {
    const latestKey = this.options.latestKey!;
    const step = this.latestChain.then(async () => {
      if (record.seq !== this.newestLatestSeq) return;
      try {
        await this.store.putFile(latestKey, filePath, { contentType: this.options.contentType, signal: this.options.signal });
      } catch (error) {
        // The snapshot itself is stored; a stale `latest` is not data loss.
        this.options.logger.warn('latest update failed', { key: latestKey, error });
      }
    });
    this.latestChain = step;
    return step;
  }
}
