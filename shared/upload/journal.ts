import type { Logger } from '../log';
import { isAppendRefused, positionMismatch, type ObjectStore } from '../storage/types';

export interface JournalOptions {
  logger: Logger;
  /** How often buffered lines are appended; the journal is at most about this far behind. */
  flushIntervalMs?: number;
  /** Aborts retry waits (the flush budget is spent). */
  signal?: AbortSignal;
}

const DEFAULT_FLUSH_INTERVAL_MS = 5_000;
/** Lines kept while storage is failing; beyond it the oldest are dropped (and counted). */
const MAX_BUFFERED_LINES = 50_000;

/**
 * An append-only JSON Lines object (one entry per line), kept current while a job runs: lines are
 * buffered and appended every few seconds, so each write costs what was added, not the whole
 * history, however long the job. Several jobs may write the same journal one after another: on
 * a position mismatch it carries on at the object's real length. A bucket that refuses appends
 * (versioned, multi-AZ) gets no journal; the job's final manifest still records everything.
 */
export class AppendJournal {
  private buffered: string[] = [];
  private position: number | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private refused = false;
  private droppedLines = 0;
  private written = 0;

  constructor(
    private readonly store: ObjectStore,
    readonly key: string,
    private readonly options: JournalOptions,
  ) {
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  add(entry: object): void {
    if (this.refused) return;
    this.buffered.push(JSON.stringify(entry));
    if (this.buffered.length > MAX_BUFFERED_LINES) {
      this.buffered.shift();
      if (this.droppedLines++ === 0) this.options.logger.warn('journal buffer full while storage fails; dropping its oldest lines (manifest.json still lists every snapshot)', { key: this.key });
    }
  }

  get linesWritten(): number {
    return this.written;
  }

  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.appendBuffered());
    return this.flushing;
  }

  /** Stops the timer and appends what is left. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  private async appendBuffered(): Promise<void> {
    if (this.refused || this.buffered.length === 0) return;
    // Taken out now: lines added while the request is out go in the next one.
    const lines = this.buffered.splice(0);
    const body = Buffer.from(lines.join('\n') + '\n');
    try {
      this.position ??= (await this.store.head(this.key, { signal: this.options.signal }))?.size ?? 0;
      this.position = await this.appendAt(body);
      this.written += lines.length;
    } catch (error) {
      this.buffered.unshift(...lines);
      if (isAppendRefused(error)) {
        this.refused = true;
        this.buffered = [];
        this.options.logger.warn('the bucket refuses appends: no journal for this job; the final manifest still lists every snapshot', { key: this.key });
        return;
      }
      this.position = undefined; // re-read the length next time
      this.options.logger.warn('journal append failed; retrying at the next flush', { key: this.key, error });
    }
  }

  private async appendAt(body: Buffer): Promise<number> {
    try {
      return (await this.store.append(this.key, body, this.position!, { contentType: 'application/x-ndjson', signal: this.options.signal })).nextPosition;
    } catch (error) {
      // Another job appended since we read the length: carry on after its lines.
      const length = positionMismatch(error);
      if (length === undefined) throw error;
      return (await this.store.append(this.key, body, length, { contentType: 'application/x-ndjson', signal: this.options.signal })).nextPosition;
    }
  }
}
