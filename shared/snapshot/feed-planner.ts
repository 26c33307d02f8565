import type { AccessUnitInfo } from '../media/h264-nal';

/**
 * Decides, picture by picture and before anything is decoded, what the imager's decoder must be
 * fed so that each interval slot gets one picture, decoding as little as possible.
 *
 * - A keyframe that falls in a free slot is all it takes: fed alone, it is the slot's picture (of
 *   several in a slot, the one nearest its middle).
 * - A slot that no keyframe reaches (keyframes further apart than the interval, an open GOP, intra
 *   refresh) gets the first I/P picture after its middle. The decoder needs the reference pictures
 *   from the last keyframe up to it; they are held here (bounded) and fed just before it, or fed as
 *   they come while the stream keeps needing them (the last GOP was longer than the interval).
 * - Pictures nothing refers to (nal_ref_idc 0: most B-frames) are never decoded, and never
 *   chosen: a decoder fed no reordering pictures outputs each picture as soon as it is in.
 *
 * Slots are a grid on the timeline (ms), anchored at the first keyframe: slot k is centred on
 * `origin + k * interval`, so keyframes that jitter around the interval still land one per slot.
 */

/** Slot k of a grid centred on `originMs + k * intervalMs`. */
export function slotOf(timeMs: number, originMs: number, intervalMs: number): number {
  return Math.floor((timeMs - originMs) / intervalMs + 0.5);
}

export interface PlannerUnit<T> {
  /** Presentation time on the job's timeline, in ms. */
  timeMs: number;
  /** The container's keyframe flag (FLV): an IDR, an I picture of an open GOP, or a recovery point. */
  keyframe: boolean;
  info: AccessUnitInfo;
  bytes: number;
  /** Whatever the caller needs back with the decision (the tag). */
  payload: T;
}

export interface FeedItem<T> {
  unit: PlannerUnit<T>;
  /** The slot this picture fills; undefined for a picture fed only as a reference. */
  slot?: number;
}

export interface PlannerCounts {
  /** Slots filled by a keyframe alone, and by a picture decoded from the GOP. */
  keyframeTargets: number;
  interiorTargets: number;
  /** Reference pictures decoded only so that a later picture could be. */
  referencesFed: number;
  /** Pictures never decoded (not needed, or nothing refers to them). */
  skipped: number;
}

export interface FeedPlannerOptions {
  intervalMs: number;
  /** Reference pictures held at most (bytes); beyond it they are fed at once instead of held. */
  maxHeldBytes: number;
}

interface Chain<T> {
  /** Reference pictures since the chain's start that the decoder has not been fed yet, in order. */
  held: PlannerUnit<T>[];
  heldBytes: number;
  /** Pictures decodable from this chain only once enough have gone by (a recovery point). */
  referencesUntilRecovered: number;
  /** An open GOP's I picture: B pictures shown before it refer to the GOP before, which we skipped. */
  leadingBefore?: number;
}

/** How far past a slot's middle a keyframe may still come before a GOP picture is taken instead. */
const KEYFRAME_PATIENCE = 0.25;
const MAX_KEYFRAME_PATIENCE_MS = 1_000;
/** I/P spacings remembered to predict the next: a few mini-GOPs of an adaptive-B encoder. */
const ANCHOR_SPACINGS_KEPT = 8;

export class FeedPlanner<T> {
  readonly counts: PlannerCounts = { keyframeTargets: 0, interiorTargets: 0, referencesFed: 0, skipped: 0 };
  private origin: number | undefined;
  private lastSlot = Number.NEGATIVE_INFINITY;
  private chain: Chain<T> | undefined;
  /** Feed references as they come (the stream keeps needing GOP pictures) rather than hold them. */
  private feedingThrough = true;
  private lastSyncMs: number | undefined;
  private lastGopMs: number | undefined;
  /**
   * Keyframes that are I pictures but not IDR (an open GOP). Fed alone, after pictures were left
   * out, the decoder misplaces them in output order and never shows them: such a stream is
   * decoded without gaps, every reference picture.
   */
  private openGop = false;
  private readonly patienceMs: number;
  /** Presentation time of the last I/P picture, and how far apart the last few were (newest last). */
  private lastAnchorMs: number | undefined;
  private readonly anchorSpacingsMs: number[] = [];

  constructor(private readonly options: FeedPlannerOptions) {
    this.patienceMs = Math.min(options.intervalMs * KEYFRAME_PATIENCE, MAX_KEYFRAME_PATIENCE_MS);
  }

  /** The stream is decoded without gaps (open GOP): a decoder that missed a picture must start afresh. */
  get decodesWithoutGaps(): boolean {
    return this.openGop;
  }

  /** The grid's anchor (timeline ms), once the first keyframe has come. */
  get gridOrigin(): number | undefined {
    return this.origin;
  }

  slotOf(timeMs: number): number {
    return slotOf(timeMs, this.origin!, this.options.intervalMs);
  }

  /** The decoder is starting over (a new imager): nothing before the next keyframe can be decoded. */
  reset(): void {
    this.chain = undefined;
    this.feedingThrough = true;
  }

  /** What to feed the decoder now, in order, for this picture (in decode order). */
  offer(unit: PlannerUnit<T>): FeedItem<T>[] {
    const { info } = unit;
    if (info.sliceType === 'P' || info.sliceType === 'I') {
      if (this.lastAnchorMs !== undefined && unit.timeMs > this.lastAnchorMs) {
        this.anchorSpacingsMs.push(unit.timeMs - this.lastAnchorMs);
        if (this.anchorSpacingsMs.length > ANCHOR_SPACINGS_KEPT) this.anchorSpacingsMs.shift();
      }
      this.lastAnchorMs = unit.timeMs;
    }
    if (unit.keyframe && (info.idr || info.sliceType === 'I')) return this.startChain(unit);
    const chain = this.chain ?? (unit.keyframe ? this.startRecoveryChain(unit) : undefined);
    // Nothing refers to it, nothing to decode it from, or it belongs to the GOP we skipped.
    if (!chain || !info.reference || (chain.leadingBefore !== undefined && info.sliceType === 'B' && unit.timeMs < chain.leadingBefore)) {
      this.counts.skipped++;
      return [];
    }
    const recovered = chain.referencesUntilRecovered <= 0;
    chain.referencesUntilRecovered--;
    if (recovered && this.isDue(unit)) return this.feedHeldThrough(chain, unit);
    if (this.feedingThrough) {
      this.counts.referencesFed++;
      return [{ unit }];
    }
    chain.held.push(unit);
    chain.heldBytes += unit.bytes;
    if (chain.heldBytes > this.options.maxHeldBytes) {
      // Too much to hold: decode it all now (more CPU, bounded memory) and keep doing so.
      this.feedingThrough = true;
      return this.release(chain);
    }
    return [];
  }

  private startChain(unit: PlannerUnit<T>): FeedItem<T>[] {
    if (this.lastSyncMs !== undefined && unit.timeMs > this.lastSyncMs) this.lastGopMs = unit.timeMs - this.lastSyncMs;
    this.lastSyncMs = unit.timeMs;
    this.origin ??= unit.timeMs;
    // Leading B pictures refer to the GOP before; only a decoder that has it can use them.
    const decoderHasPrevious = this.chain !== undefined && this.chain.held.length === 0;
    if (!unit.info.idr) this.openGop = true;
    const chain: Chain<T> = { held: [], heldBytes: 0, referencesUntilRecovered: 0, leadingBefore: unit.info.idr || decoderHasPrevious ? undefined : unit.timeMs };
    this.chain = chain;
    const slot = this.slotOf(unit.timeMs);
    // With several keyframes to a slot, the one nearest its middle: the next is expected a GOP later.
    const nearestToMiddle = this.lastGopMs === undefined || unit.timeMs >= this.slotMiddle(slot) - this.lastGopMs / 2;
    if (slot > this.lastSlot && nearestToMiddle) {
      this.counts.keyframeTargets++;
      this.took(unit, slot);
      return [{ unit, slot }];
    }
    this.feedingThrough = this.gopPictureExpected(unit.timeMs);
    if (this.feedingThrough) {
      this.counts.referencesFed++;
      return [{ unit }];
    }
    chain.held.push(unit);
    chain.heldBytes += unit.bytes;
    return [];
  }

  /** Intra refresh: no picture is whole on its own; the SEI says after how many it is. */
  private startRecoveryChain(unit: PlannerUnit<T>): Chain<T> {
    this.origin ??= unit.timeMs;
    this.chain = { held: [], heldBytes: 0, referencesUntilRecovered: unit.info.recoveryFrames ?? 0 };
    this.feedingThrough = true;
    return this.chain;
  }

  /**
   * An I/P picture of a slot that is still empty: once past the slot's middle (and the patience
   * left for a keyframe), or earlier when the next I/P may come after the slot ends (as far apart
   * as the widest of the last few: encoders vary it) — an interval shorter than that spacing would
   * otherwise miss slots.
   */
  private isDue(unit: PlannerUnit<T>): boolean {
    if (unit.info.sliceType !== 'P' && unit.info.sliceType !== 'I') return false;
    const slot = this.slotOf(unit.timeMs);
    if (slot <= this.lastSlot) return false;
    const widestSpacing = this.anchorSpacingsMs.length > 0 ? Math.max(...this.anchorSpacingsMs) : undefined;
    const lastInSlot = widestSpacing !== undefined && unit.timeMs + widestSpacing >= this.slotMiddle(slot) + this.options.intervalMs / 2;
    return lastInSlot || unit.timeMs >= this.slotMiddle(slot) + this.patienceMs;
  }

  private feedHeldThrough(chain: Chain<T>, unit: PlannerUnit<T>): FeedItem<T>[] {
    const slot = this.slotOf(unit.timeMs);
    const items = this.release(chain);
    items.push({ unit, slot });
    this.counts.interiorTargets++;
    this.took(unit, slot);
    return items;
  }

  private release(chain: Chain<T>): FeedItem<T>[] {
    const items = chain.held.map((held) => ({ unit: held }));
    this.counts.referencesFed += items.length;
    chain.held = [];
    chain.heldBytes = 0;
    return items;
  }

  private took(unit: PlannerUnit<T>, slot: number): void {
    this.lastSlot = slot;
    this.feedingThrough = this.gopPictureExpected(unit.timeMs);
  }

  /**
   * Whether the next empty slot will need a picture from inside a GOP before the next keyframe is
   * expected (the last GOP's length after the last keyframe). Until a GOP has been seen, without
   * keyframes at all, or in an open GOP, it is assumed to.
   */
  private gopPictureExpected(afterMs: number): boolean {
    if (this.openGop || this.lastGopMs === undefined || this.lastSyncMs === undefined) return true;
    const nextSlot = Math.max(this.lastSlot + 1, this.slotOf(afterMs) + 1);
    return this.slotMiddle(nextSlot) + this.patienceMs < this.lastSyncMs + this.lastGopMs;
  }

  private slotMiddle(slot: number): number {
    return this.origin! + slot * this.options.intervalMs;
  }
}
