import { rmSync } from 'node:fs';
import { isRetryable } from '../errors';
import type { Logger } from '../log';
import { hlsKeys, mediaPlaylist, PLAYLIST_CONTENT_TYPE, SEGMENT_CONTENT_TYPE, type PlaylistSegment } from '../media/hls-playlist';
import { OUTAGE_RETRY, STORAGE_REQUEST_RETRY, withRetry } from '../retry';
import type { ObjectStore } from '../storage/types';
import { describeHls, holdHlsPart, logStoredSegment, type StoreTarget } from './leftovers';
import type { SpillBudget } from './spill-queue';

/**
 * Stores an HLS recording while it is made (the segment sink): the init segment, then each media
 * segment as its own object, then the playlist rewritten to list it. A segment is listed only
 * once it is stored, and in order, so the playlist in the bucket always plays, up to a segment
 * (about 4 s) behind the recording.
 *
 * While storage is down, segments wait in memory and, from the first failed attempt, on disk (the
 * folder says which object each belongs to and which are stored), where they outlive a crash; the
 * playlist catches up in order when storage is back. The next invocation stores what is held and
 * ends the playlist (job/recovery.ts). When memory and disk are full, write() says so and the
 * caller stops feeding, as with GrowingObjectUpload.
 */

export interface HlsUploadOptions {
  store: ObjectStore;
  /** The recording's object folder, ending in '/': the playlist, init and segments go under it. */
  dirKey: string;
  /** The init segment's content type: video/mp4, or audio/mp4 for audio alone. */
  contentType: string;
  logger: Logger;
  /** Epoch ms after which failed requests are not tried again. */
  giveUpAt: () => number;
  signal?: AbortSignal;
  memoryLimitBytes?: number;
  /** Called once, when the first segment and a playlist listing it are stored. */
  onFirstStored?: () => void;
  /** The local folder (in the work dir) that holds what storage has not taken. */
  spill?: { dir: string; budget: SpillBudget; target: StoreTarget };
}

export interface HlsUploadResult {
  playlistKey: string;
  /** Segments stored and listed in the playlist. */
  segments: number;
  /** Media seconds the playlist lists. */
  durationSec: number;
  /** Bytes stored: init and segments. */
  storedBytes: number;
  /** Segments left on the instance for the next invocation to store and list. */
  heldSegments: number;
  /** Segments that could not be stored or held, from the first of them on (never listed: no gap). */
  lostSegments: number;
  /** The stored playlist is complete (EXT-X-ENDLIST). */
  ended: boolean;
  error?: string;
}

interface Pending extends PlaylistSegment {
  bytes?: Buffer;
  /** Held on disk instead of in memory. */
  path?: string;
  size: number;
}

const DEFAULT_MEMORY_LIMIT_BYTES = 8 * 1024 * 1024;
/** While catching up after an outage, the playlist is rewritten after this many segments (and when caught up). */
const CATCH_UP_PLAYLIST_EVERY = 10;

/** Ends an upload and says how it went; never rejects (a failure is in the result). */
export async function finishHlsUpload(upload: HlsUpload): Promise<HlsUploadResult> {
  try {
    return await upload.end();
  } catch (error) {
    return { ...upload.report(), error: error instanceof Error ? error.message : String(error) };
  }
}

export class HlsUpload {
  private init: { bytes?: Buffer; path?: string; size: number; stored: boolean } | undefined;
  private readonly queue: Pending[] = [];
  private memoryBytes = 0;
  private readonly stored: PlaylistSegment[] = [];
  private storedBytes = 0;
  private nextSequence = 0;
  /** Storage failed its last attempt: what comes goes to disk until an attempt succeeds. */
  private outage = false;
  private gaveUp = false;
  private lostSegments = 0;
  private ended = false;
  private error: string | undefined;
  private ending = false;
  private listedAny = false;
  private wake: (() => void) | undefined;
  private roomWaiters: Array<() => void> = [];
  private readonly worker: Promise<void>;
  private readonly keys: ReturnType<typeof hlsKeys>;

  constructor(private readonly options: HlsUploadOptions) {
    const { spill, dirKey, contentType } = options;
    this.keys = hlsKeys(dirKey);
    if (spill) describeHls(spill.dir, { bucket: spill.target.bucket, region: spill.target.region, dirKey, contentType });
    this.worker = this.run().catch((error: unknown) => this.giveUp(error));
  }

  get playlistKey(): string {
    return this.keys.playlist;
  }

  writeInit(bytes: Buffer): void {
    this.init = { bytes, size: bytes.length, stored: false };
    if (this.outage || this.gaveUp) this.holdInit();
    this.wake?.();
  }

  /** Takes the next segment. False: memory and disk are full; wait for room() before the next. */
  writeSegment(bytes: Buffer, durationSec: number): boolean {
    const segment: Pending = { sequence: this.nextSequence++, durationSec, bytes, size: bytes.length };
    if (this.lostSegments > 0) {
      // One is lost: listing any after it would leave a gap.
      this.lostSegments++;
      return true;
    }
    this.queue.push(segment);
    this.memoryBytes += segment.size;
    if (this.outage || this.gaveUp || this.memoryBytes > this.memoryLimit) this.holdMemory();
    if (this.gaveUp) this.dropMemory();
    this.wake?.();
    return this.hasRoom();
  }

  room(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** No more segments: stores what is pending (until giveUpAt), then the playlist with ENDLIST. */
  async end(): Promise<HlsUploadResult> {
    this.ending = true;
    this.wake?.();
    await this.worker;
    if (!this.gaveUp && this.stored.length > 0) {
      await this.attempt(() => this.putPlaylist(true)).then(
        () => (this.ended = true),
        (error: unknown) => this.giveUp(error),
      );
    }
    const held = this.queue.filter((segment) => segment.path !== undefined).length;
    // Gone from memory, and nothing is listed past a lost one.
    this.lostSegments += this.queue.length - held;
    if (held === 0 && (this.ended || this.stored.length === 0) && this.options.spill) rmSync(this.options.spill.dir, { recursive: true, force: true });
    return this.report();
  }

  /** How the upload stands (the final result once end() resolved). */
  report(): HlsUploadResult {
    return {
      playlistKey: this.playlistKey,
      segments: this.stored.length,
      durationSec: this.stored.reduce((sum, segment) => sum + segment.durationSec, 0),
      storedBytes: this.storedBytes,
      heldSegments: this.queue.filter((segment) => segment.path !== undefined).length,
      lostSegments: this.lostSegments,
      ended: this.ended,
      ...(this.error ? { error: this.error } : {}),
    };
  }

  private get memoryLimit(): number {
    return this.options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES;
  }

  private hasRoom(): boolean {
    return this.gaveUp || this.memoryBytes <= this.memoryLimit;
  }

  private async run(): Promise<void> {
    for (;;) {
      const next = this.queue[0];
      if (this.gaveUp || (!next && this.ending)) return;
      if (!next || !this.init) {
        if (this.ending) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      if (!this.init.stored) await this.attempt(() => this.putInit());
      await this.attempt(() => this.putSegment(next));
      // Logged before its held copy goes: a kill in between leaves a copy recovery skips, not a gap.
      if (this.options.spill) logStoredSegment(this.options.spill.dir, next);
      this.stored.push({ sequence: next.sequence, durationSec: next.durationSec });
      this.storedBytes += next.size;
      this.queue.shift();
      if (next.bytes) this.memoryBytes -= next.size;
      if (next.path) {
        rmSync(next.path, { force: true });
        this.options.spill?.budget.release(next.size);
      }
      this.releaseRoom();
      // Live: listed at once. Catching up: every few segments, and once caught up.
      if (this.queue.length === 0 || this.stored.length % CATCH_UP_PLAYLIST_EVERY === 0) {
        await this.attempt(() => this.putPlaylist(false));
        if (!this.listedAny) this.options.onFirstStored?.();
        this.listedAny = true;
      }
    }
  }

  /** One request, retried (holding what comes meanwhile on disk) until it succeeds or giveUpAt passes. */
  private async attempt(request: () => Promise<unknown>): Promise<void> {
    const { logger, signal } = this.options;
    let refused = false;
    await withRetry(
      async () => {
        try {
          await request();
        } catch (error) {
          refused = !isRetryable(error);
          throw error;
        }
      },
      {
        policy: OUTAGE_RETRY,
        signal,
        shouldRetry: () => !refused && Date.now() < this.options.giveUpAt(),
        onRetry: ({ attempt, error }) => {
          if (attempt === 1) logger.warn('storing the HLS recording is failing; keeping its segments until storage is back', { key: this.playlistKey, error });
          this.outage = true;
          this.holdMemory();
          if (this.init && !this.init.stored) this.holdInit();
        },
      },
    );
    this.outage = false;
  }

  private async putInit(): Promise<void> {
    const init = this.init!;
    const key = this.keys.init;
    const options = { contentType: this.options.contentType, retry: STORAGE_REQUEST_RETRY, signal: this.options.signal };
    await (init.path ? this.options.store.putFile(key, init.path, options) : this.options.store.putBuffer(key, init.bytes!, options));
    init.stored = true;
    this.storedBytes += init.size;
    if (init.path) rmSync(init.path, { force: true });
  }

  private async putSegment(segment: Pending): Promise<void> {
    const key = this.keys.segment(segment.sequence);
    const options = { contentType: SEGMENT_CONTENT_TYPE, retry: STORAGE_REQUEST_RETRY, signal: this.options.signal };
    await (segment.path ? this.options.store.putFile(key, segment.path, options) : this.options.store.putBuffer(key, segment.bytes!, options));
  }

  private async putPlaylist(ended: boolean): Promise<void> {
    const text = mediaPlaylist(this.stored, ended);
    await this.options.store.putBuffer(this.playlistKey, Buffer.from(text), { contentType: PLAYLIST_CONTENT_TYPE, retry: STORAGE_REQUEST_RETRY, signal: this.options.signal });
  }

  /** Moves the segments waiting in memory to disk, in order, while the budget allows. */
  private holdMemory(): void {
    const spill = this.options.spill;
    if (!spill) return;
    for (const segment of this.queue) {
      if (!segment.bytes) continue;
      if (!spill.budget.reserve(segment.size)) return;
      try {
        segment.path = holdHlsPart(spill.dir, segment.bytes, segment);
      } catch (error) {
        spill.budget.release(segment.size);
        this.options.logger.warn('could not hold an HLS segment on disk; keeping it in memory', { key: this.playlistKey, error });
        return;
      }
      segment.bytes = undefined;
      this.memoryBytes -= segment.size;
    }
    this.releaseRoom();
  }

  private holdInit(): void {
    const init = this.init!;
    if (!this.options.spill || init.path || init.stored) return;
    try {
      init.path = holdHlsPart(this.options.spill.dir, init.bytes!);
      init.bytes = undefined;
    } catch (error) {
      this.options.logger.warn('could not hold the HLS init segment on disk', { key: this.playlistKey, error });
    }
  }

  /** After giving up: what memory still holds can go nowhere; it and everything after it are lost. */
  private dropMemory(): void {
    const firstInMemory = this.queue.findIndex((segment) => segment.bytes !== undefined);
    if (firstInMemory < 0) return;
    const dropped = this.queue.splice(firstInMemory);
    for (const segment of dropped) {
      if (!segment.path) continue;
      rmSync(segment.path, { force: true });
      this.options.spill?.budget.release(segment.size);
    }
    this.memoryBytes = 0;
    this.lostSegments += dropped.length;
    this.releaseRoom();
  }

  private giveUp(error: unknown): void {
    this.gaveUp = true;
    this.error = error instanceof Error ? error.message : String(error);
    this.options.logger.error('the HLS recording could not be stored', { key: this.playlistKey, error });
    // What fits on disk stays for the next invocation.
    this.holdMemory();
    if (this.init && !this.init.stored) this.holdInit();
    this.dropMemory();
  }

  private releaseRoom(): void {
    if (!this.hasRoom()) return;
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }
}
