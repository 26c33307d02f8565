import { rm } from 'node:fs/promises';
import type { JobContext } from '../../job/lifecycle';
import type { ObjectStore } from '../../storage/types';
import { ImageUploader, type ImageRecord } from '../../upload/image-uploader';
import type { StoreTarget } from '../../upload/leftovers';
import { imageFileProblem } from './check';
import { CONTENT_TYPES, type ImageFormat } from './format';

/**
 * The one output for images, whichever job writes them: each file an encoder writes is checked
 * (only a complete image counts), named by the job, uploaded as it appears, and at the end
 * retried once; what still fails is left described for the next invocation to store.
 */

export interface ImageSinkOptions<R extends ImageRecord> {
  store: ObjectStore;
  target: StoreTarget;
  context: JobContext;
  format: ImageFormat;
  concurrency: number;
  latestKey?: string;
  /** Each stored image's line, for the job's journal: also written by the next invocation's recovery. */
  journalEntry?: (record: R) => Record<string, unknown>;
  journalKey?: string;
  onSettled?: (record: R) => void;
}

export type TakeOutcome<R> = { record: R } | { problem: string };

export class ImageSink<R extends ImageRecord> {
  readonly records: R[] = [];
  discarded = 0;
  private readonly uploader: ImageUploader<R>;

  constructor(private readonly options: ImageSinkOptions<R>) {
    this.uploader = new ImageUploader<R>(options.store, {
      contentType: CONTENT_TYPES[options.format],
      concurrency: options.concurrency,
      latestKey: options.latestKey,
      signal: options.context.storageSignal,
      logger: options.context.log,
      onSettled: options.onSettled,
    });
  }

  /**
   * A file the encoder finished: queued for upload when it is a complete image (the record is
   * made by `describe`, given the next seq and the file's facts), else removed and counted.
   */
  async take(filePath: string, describe: (facts: Pick<ImageRecord, 'seq' | 'bytes' | 'writtenAt' | 'attempts' | 'status'>) => R): Promise<TakeOutcome<R>> {
    const { problem, bytes, modifiedAt } = await imageFileProblem(this.options.format, filePath);
    if (problem) {
      this.discarded++;
      await rm(filePath, { force: true });
      return { problem };
    }
    const record = describe({ seq: this.records.length, bytes, writtenAt: modifiedAt, attempts: 0, status: 'pending' });
    this.records.push(record);
    this.uploader.enqueue(record, filePath);
    return { record };
  }

  get counts(): { taken: number; uploaded: number; failed: number; discarded: number } {
    return { taken: this.records.length, ...this.uploader.counts, discarded: this.discarded };
  }

  /** Waits for the uploads, retries failed ones once (time allowing) and leaves the rest described. */
  async finish(): Promise<void> {
    const { context, target, format, journalKey, journalEntry } = this.options;
    await this.uploader.drain();
    if (this.uploader.counts.failed > 0 && !context.storageSignal.aborted) {
      context.log.info('retrying failed images once more', { failed: this.uploader.counts.failed });
      await this.uploader.retryFailed();
    }
    for (const { record, filePath } of this.uploader.failedFiles) {
      const journal = journalKey && journalEntry ? { key: journalKey, entry: journalEntry(record) } : undefined;
      await context.leaveForNextInvocation(filePath, { bucket: target.bucket, region: target.region, key: record.key, contentType: CONTENT_TYPES[format], journal });
    }
  }
}
