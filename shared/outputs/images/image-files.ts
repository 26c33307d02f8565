import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import type { Logger } from '../../log';

export interface ImageDirectoryOptions {
  /** Position of a file in the order images are written, or undefined for any other file. */
  orderOf(name: string): number | undefined;
  /** Called once per new image, in order, one at a time. */
  onImage(name: string, order: number): Promise<void>;
  logger: Logger;
}

/** A backstop for a missed notification; notifications do the real work. */
const SAFETY_SCAN_MS = 2_000;

/**
 * Hands over the images an ffmpeg writes into a directory, as they appear. ffmpeg renames each
 * finished file into place (-atomic_writing) in write order, so every name newer than the last
 * one handed over is a new image. Driven by file-system notifications rather than a poll: a
 * 200 ms readdir loop cost more CPU than the rest of Node's work.
 */
export class ImageDirectory {
  private lastOrder = Number.NEGATIVE_INFINITY;
  private scanning: Promise<void> = Promise.resolve();
  private rescan = false;
  private readonly watcher: FSWatcher;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly dir: string,
    private readonly options: ImageDirectoryOptions,
  ) {
    // ffmpeg's writes to its temporary file notify too; only a finished image's name matters.
    this.watcher = watch(dir, (_event, name) => {
      if (name === null || options.orderOf(String(name)) !== undefined) this.requestScan();
    });
    this.watcher.on('error', (error) => options.logger.warn('watching the image directory failed; scanning on a timer', { error }));
    this.timer = setInterval(() => this.requestScan(), SAFETY_SCAN_MS);
  }

  /** Scans once more and stops watching; resolves when every image found was handed over. */
  async close(): Promise<void> {
    this.watcher.close();
    clearInterval(this.timer);
    this.requestScan();
    await this.scanning;
  }

  private requestScan(): void {
    // At most one scan runs and one more is queued, however many notifications arrive.
    if (this.rescan) return;
    this.rescan = true;
    this.scanning = this.scanning.then(async () => {
      this.rescan = false;
      await this.scan().catch((error) => this.options.logger.warn('scanning the image directory failed', { error }));
    });
  }

  private async scan(): Promise<void> {
    const found = (await readdir(this.dir))
      .map((name) => ({ name, order: this.options.orderOf(name) }))
      .filter((entry): entry is { name: string; order: number } => entry.order !== undefined && entry.order > this.lastOrder)
      .sort((a, b) => a.order - b.order);
    for (const { name, order } of found) {
      this.lastOrder = order;
      await this.options.onImage(name, order);
    }
  }
}
