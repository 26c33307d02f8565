import { join } from 'node:path';
import { imageEncoderArgs, imageFilters, type ImageFormat } from '../outputs/images/format';

export type DecodeMode = 'keyframes' | 'all';

/**
 * Snapshot slots are an interval grid anchored at the first frame taken, so the cadence never
 * drifts. For keyframes the grid is shifted half a slot, so keyframes that jitter around the
 * interval still land one per slot, and a minimum gap keeps a keyframe at a slot's early edge
 * from being taken when a better one follows. Decoding every frame, the first frame of each slot
 * is taken. `KeyframeSelector` (keyframes, in Node) and `selectExpression` (every frame, in
 * ffmpeg) implement the same grid.
 */
export function slotPhase(mode: DecodeMode): number {
  return mode === 'keyframes' ? 0.5 : 0.001;
}

function minGapFraction(mode: DecodeMode): number {
  return mode === 'keyframes' ? 0.6 : 0;
}

export function snapshotSlot(streamTime: number, anchorStreamTime: number, intervalSec: number, mode: DecodeMode): number {
  return Math.floor((streamTime - anchorStreamTime) / intervalSec + slotPhase(mode));
}

export interface KeyframeDecision {
  take: boolean;
  slot: number;
  /** Whole slots skipped since the previous keyframe taken: the keyframes are sparser than the interval. */
  missedSlots: number;
}

/** Picks one keyframe per slot as they arrive, before anything is decoded. Times in ms. */
export class KeyframeSelector {
  private lastTaken: { ptsMs: number; slot: number } | undefined;

  constructor(
    private readonly intervalSec: number,
    private readonly anchorPtsMs: number,
  ) {}

  offer(ptsMs: number): KeyframeDecision {
    const slot = snapshotSlot(ptsMs / 1000, this.anchorPtsMs / 1000, this.intervalSec, 'keyframes');
    const last = this.lastTaken;
    const take = !last || (slot > last.slot && ptsMs - last.ptsMs >= this.intervalSec * 1000 * minGapFraction('keyframes'));
    const missedSlots = last && take ? Math.max(0, slot - last.slot - 1) : 0;
    if (take) this.lastTaken = { ptsMs, slot };
    return { take, slot, missedSlots };
  }
}

/**
 * ffmpeg `select` expression for decoding every frame: the first frame of each slot of the grid
 * anchored at `anchorSec` (the connection's first frame).
 */
export function selectExpression(intervalSec: number, anchorSec: number): string {
  const slot = (time: string) => `floor((${time}-${anchorSec})/${intervalSec}+${slotPhase('all')})`;
  return `if(isnan(prev_selected_t),1,gt(${slot('t')},${slot('prev_selected_t')}))`;
}

export interface ImagerPlan {
  mode: DecodeMode;
  intervalSec: number;
  /** Grid anchor (s, stream time), used when decoding every frame. */
  anchorSec: number;
  format: ImageFormat;
  width?: number;
  quality?: number;
  /** Where images are written. */
  workDir: string;
  /** Connection number within the job; part of every file name. */
  run: number;
}

export function imagerFilter(plan: Pick<ImagerPlan, 'mode' | 'intervalSec' | 'anchorSec' | 'format' | 'width'>): string | undefined {
  const filters: string[] = [];
  // Fed keyframes only, we already chose which: every frame that arrives becomes an image.
  if (plan.mode === 'all') filters.push(`select='${selectExpression(plan.intervalSec, plan.anchorSec)}'`);
  // -2 keeps the aspect ratio with an even height, which every encoder accepts.
  if (plan.width !== undefined) filters.push(`scale=${plan.width}:-2:flags=bicubic`);
  filters.push(...imageFilters(plan.format));
  return filters.length > 0 ? filters.join(',') : undefined;
}

/**
 * Each image is named by its stream time in milliseconds: `r<run>-<ms>.<ext>`. `-copyts` keeps
 * the FLV timestamps we fed, so the name is the pts of the frame we chose.
 */
export function snapshotFileName(run: number, format: ImageFormat, streamTimeMs: number | '%d'): string {
  return `r${run}-${streamTimeMs}.${format}`;
}

/** The run and stream time (ms) in a snapshot file name, or undefined for any other file. */
export function parseSnapshotFileName(name: string, format: ImageFormat): { run: number; ms: number } | undefined {
  const match = new RegExp(`^r(\\d+)-(-?\\d+)\\.${format}$`).exec(name);
  return match ? { run: Number(match[1]), ms: Number(match[2]) } : undefined;
}

/**
 * The imager: FLV we feed on fd 3 in, images out. Single-threaded decode and encode: one picture
 * at a time gains nothing from threads. It ends when we end its input, after writing every picture
 * its decoder still held — so stopping never interrupts a write.
 */
export function imagerArgs(plan: ImagerPlan): string[] {
  const filter = imagerFilter(plan);
  return [
    '-hide_banner', '-nostats', '-loglevel', 'error',
    // What we feed starts with the codec's parameters: nothing to probe for, so no wait.
    '-threads', '1', '-probesize', '32', '-analyzeduration', '0', '-copyts', '-f', 'flv', '-i', 'pipe:3',
    '-map', '0:v:0', '-an',
    ...(filter ? ['-vf', filter] : []),
    // vfr: write each frame once, never duplicate to fill a rate. The rate only sets a
    // millisecond time base for -frame_pts.
    '-vsync', 'vfr', '-r', '1000',
    ...imageEncoderArgs(plan.format, plan.quality),
    '-f', 'image2', '-frame_pts', '1',
    // Files appear by rename: a name in the directory is a file ffmpeg finished writing.
    '-atomic_writing', '1',
    join(plan.workDir, snapshotFileName(plan.run, plan.format, '%d')),
  ];
}
