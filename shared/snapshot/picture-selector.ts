import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log';
import type { FlvTag, VideoTagInfo } from '../media/flv';
import { accessUnitInfo } from '../media/h264-nal';
import { firstSpsOf, nalLengthSize, type SpsInfo } from '../media/h264-sps';
import type { ImageFormat, PictureFormat } from '../outputs/images/format';
import { ImageDirectory } from '../outputs/images/image-files';
import { imagerTime, parseSnapshotFileName } from './args';
import { FeedPlanner, type FeedItem } from './feed-planner';
import { Imager } from './imager';
import { RUNS_FILE, type ImagerNote } from './recovery';

/**
 * Chooses the pictures to decode and decodes only those: per slot of the interval grid the
 * planner picks a keyframe (or an in-GOP picture with the references it needs), and imagers
 * (one ffmpeg per stream format) turn them into image files. Each file the imager writes is
 * handed on with the slot it was chosen for; a picture that could not be fed in time is shed.
 */

export interface PictureSelectorOptions {
  intervalSec: number;
  format: ImageFormat;
  width?: number;
  quality?: number;
  ffmpegPath: string;
  workDir: string;
  env: Record<string, string>;
  logger: Logger;
  /** Enough pictures chosen (max_snapshots): the caller stops the capture. */
  maxChosen?: number;
  onEnoughChosen(): void;
  /** The imager keeps failing on this stream: the caller stops with this error. */
  onImagerFailing(message: string): void;
  /** An image file the imager finished. `chosen` is undefined for a picture nobody asked for. */
  onImage(image: WrittenImage): Promise<void>;
}

export interface WrittenImage {
  filePath: string;
  run: number;
  /** Seconds on the source's clock from the grid's origin. */
  streamTime: number;
  chosen?: {
    /** The slot's time on the grid (ms): the key's time. */
    slotTimeMs: number;
    receivedAt: number;
    fromKeyframe: boolean;
  };
}

/** One connection's picture path: its format and its imager. */
export interface SelectorConnection {
  format?: StreamFormat;
  imager?: ImagerSlot;
  imagerStarts: number;
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

/** What the imager may have unread before new pictures are shed: a few 1080p keyframes. */
const IMAGER_BACKLOG_BYTES = 4 * 1024 * 1024;
/** Reference pictures held for a GOP picture that may be needed; beyond it they are decoded at once. */
const MAX_HELD_REFERENCE_BYTES = 16 * 1024 * 1024;
/** An imager that keeps dying is a broken stream or binary, not a hiccup. */
const MAX_IMAGER_STARTS_PER_CONNECTION = 4;
/** Imager time starts this far before the first picture fed, so decode times stay positive. */
const IMAGER_BASE_MARGIN_MS = 10_000;

export class PictureSelector {
  /** Pictures not decoded because the imager could not keep up (load shed). */
  shed = 0;
  /** When the first image from inside a GOP was chosen. */
  firstGopImageAt: number | undefined;
  private readonly planner: FeedPlanner<Picture>;
  private readonly imagers = new Set<ImagerSlot>();
  private nextImagerRun = 0;
  private chosenCount = 0;

  constructor(private readonly options: PictureSelectorOptions) {
    this.planner = new FeedPlanner({ intervalMs: options.intervalSec * 1000, maxHeldBytes: MAX_HELD_REFERENCE_BYTES });
  }

  get plannerCounts(): { referencesFed: number; skipped: number } {
    return this.planner.counts;
  }

  /** A new connection: its decoder starts from nothing. */
  connection(): SelectorConnection {
    this.planner.reset();
    return { imagerStarts: 0 };
  }

  /** An AVC sequence header: new parameters start a new imager at the next keyframe. */
  sequenceHeader(connection: SelectorConnection, tag: FlvTag): void {
    if (connection.format?.header.data.equals(tag.data)) return;
    const record = tag.data.subarray(5);
    const sps = firstSpsOf(record);
    if (!sps) return this.options.logger.warn('a sequence header without a readable SPS; ignored');
    this.changeFormat(connection, { header: tag, nalLengthSize: nalLengthSize(record), ...formatOfSps(sps) });
  }

  /** A picture at timeline times `dtsMs` / `ptsMs`; ignored until the stream's format is known. */
  picture(connection: SelectorConnection, tag: FlvTag, info: VideoTagInfo, dtsMs: number, ptsMs: number, receivedAt: number): void {
    const format = connection.format;
    if (!format) return;
    const unit = accessUnitInfo(tag.data.subarray(5), format.nalLengthSize);
    // An encoder may change its parameters in band, without a new sequence header.
    if (unit.sps && info.keyframe && changedFormat(format, unit.sps)) this.changeFormat(connection, { ...format, ...formatOfSps(unit.sps) });
    const items = this.planner.offer({ timeMs: ptsMs, keyframe: info.keyframe, info: unit, bytes: tag.bytes.length, payload: { tag, dtsMs, ptsMs, receivedAt } });
    for (const item of items) {
      if (!this.feed(connection, item)) break;
    }
  }

  /** The connection ended: its imager finishes and every image it wrote is handed on. */
  async closeConnection(connection: SelectorConnection): Promise<void> {
    if (connection.imager) await this.retire(connection.imager);
  }

  /** Ends every imager; resolves once all their images have been handed on. */
  async finish(): Promise<void> {
    await Promise.all([...this.imagers].map((slot) => this.retire(slot)));
  }

  /** New parameters (a republish at another size, say): the next keyframe starts a new imager. */
  private changeFormat(connection: SelectorConnection, format: StreamFormat): void {
    const previous = connection.format;
    connection.format = format;
    if (previous && (previous.width !== format.width || previous.height !== format.height)) {
      this.options.logger.info('the stream changed its picture size', { from: `${previous.width}x${previous.height}`, to: `${format.width}x${format.height}` });
    }
    if (connection.imager) void this.retire(connection.imager);
    connection.imager = undefined;
    this.planner.reset();
  }

  /** Passes one planned picture to the imager; false when the rest of this batch must not follow. */
  private feed(connection: SelectorConnection, item: FeedItem<Picture>): boolean {
    const picture = item.unit.payload;
    const chosen = item.slot !== undefined;
    // max_snapshots is counted here, once: nothing is chosen past it, even later in this batch.
    if (chosen && this.options.maxChosen !== undefined && this.chosenCount >= this.options.maxChosen) return false;
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
      if (this.options.maxChosen !== undefined && ++this.chosenCount >= this.options.maxChosen) this.options.onEnoughChosen();
    }
    return true;
  }

  private startImager(connection: SelectorConnection, first: Picture): ImagerSlot | undefined {
    const format = connection.format!;
    const { workDir, logger } = this.options;
    if (connection.imagerStarts >= MAX_IMAGER_STARTS_PER_CONNECTION) {
      this.options.onImagerFailing(`the imager keeps failing on this stream (${connection.imagerStarts} starts)`);
      return undefined;
    }
    connection.imagerStarts++;
    const run = this.nextImagerRun++;
    const baseMs = first.dtsMs - IMAGER_BASE_MARGIN_MS;
    const imager = new Imager({
      ffmpegPath: this.options.ffmpegPath,
      plan: { format: this.options.format, picture: format.picture, width: this.options.width, quality: this.options.quality, workDir, run },
      baseMs,
      sequenceHeader: format.header,
      maxBacklogBytes: IMAGER_BACKLOG_BYTES,
      env: this.options.env,
    });
    const slot: ImagerSlot = {
      imager,
      chosen: new Map(),
      images: new ImageDirectory(workDir, {
        orderOf: (name) => {
          const parsed = parseSnapshotFileName(name, this.options.format);
          return parsed?.run === run ? parsed.ms : undefined;
        },
        onImage: (name, ms) => this.written(slot, join(workDir, name), ms),
        logger,
      }),
      done: Promise.resolve(),
    };
    this.imagers.add(slot);
    void this.noteImager({ run, baseMs, originMs: this.planner.gridOrigin!, intervalMs: this.options.intervalSec * 1000 });
    void imager.exited.then((exit) => {
      if (exit.code !== 0 && exit.stopCause === undefined) logger.warn('the imager failed', { run, code: exit.code, signal: exit.signal, stderr: exit.stderrTail.slice(-3) });
    });
    connection.imager = slot;
    return slot;
  }

  /** An image file the imager finished, matched with the picture chosen for it. */
  private written(slot: ImagerSlot, filePath: string, imagerMs: number): Promise<void> {
    const chosen = slot.chosen.get(imagerMs);
    // Older entries can no longer produce an image.
    for (const ms of slot.chosen.keys()) {
      if (ms > imagerMs) break;
      slot.chosen.delete(ms);
    }
    const origin = this.planner.gridOrigin!;
    const intervalMs = this.options.intervalSec * 1000;
    const streamTime = ((chosen?.ptsMs ?? slot.imager.baseMs + imagerMs / 2) - origin) / 1000;
    return this.options.onImage({
      filePath,
      run: slot.imager.run,
      streamTime,
      chosen: chosen && { slotTimeMs: origin + chosen.slot * intervalMs, receivedAt: chosen.receivedAt, fromKeyframe: chosen.fromKeyframe },
    });
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
    await appendFile(join(this.options.workDir, RUNS_FILE), JSON.stringify(note) + '\n').catch((error) => this.options.logger.warn('could not note the imager', { error }));
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
