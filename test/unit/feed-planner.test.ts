import { describe, expect, it } from 'vitest';
import type { AccessUnitInfo, SliceType } from '../../shared/media/h264-nal';
import { FeedPlanner, slotOf, type PlannerUnit } from '../../shared/snapshot/feed-planner';
import { StreamTimeline } from '../../shared/snapshot/timeline';

/**
 * Streams as encoders make them, in decode order: `gop` pictures from one keyframe to the next,
 * `b` B-frames between references (the middle one a reference when `pyramid`) or P pictures at
 * `anchors` (frames into each GOP), `open` for non-IDR I keyframes, `refresh` for intra refresh
 * (recovery points, no I pictures at all).
 */
function stream(options: { fps: number; gopFrames: number; frames: number; b?: number; anchors?: number[]; pyramid?: boolean; open?: boolean; refresh?: number }): PlannerUnit<number>[] {
  const units: PlannerUnit<number>[] = [];
  const frameMs = 1000 / options.fps;
  const b = options.b ?? 0;
  const unit = (display: number, decode: number, keyframe: boolean, sliceType: SliceType, reference: boolean, extra: Partial<AccessUnitInfo> = {}) =>
    units.push({ timeMs: Math.round(display * frameMs), keyframe, info: { idr: keyframe && sliceType === 'I' && !options.open, sliceType, reference, ...extra }, bytes: 1000, payload: decode });
  let decode = 0;
  for (let gopStart = 0; gopStart < options.frames; gopStart += options.gopFrames) {
    const gopEnd = Math.min(gopStart + options.gopFrames, options.frames);
    if (options.refresh !== undefined) {
      for (let frame = gopStart; frame < gopEnd; frame++) unit(frame, decode++, frame === gopStart, 'P', true, frame === gopStart ? { recoveryFrames: options.refresh } : {});
      continue;
    }
    unit(gopStart, decode++, true, 'I', true);
    // Each reference (P) first in decode order, then the B-frames shown before it. `anchors` places
    // the P pictures within each GOP (an encoder varying the B-frames between them); else every b + 1.
    const anchors: number[] = [];
    if (options.anchors) anchors.push(...options.anchors.map((offset) => gopStart + offset).filter((frame) => frame < gopEnd));
    else for (let start = gopStart + 1; start < gopEnd; start += b + 1) anchors.push(Math.min(start + b, gopEnd - 1));
    for (const [index, anchor] of anchors.entries()) {
      const start = index === 0 ? gopStart + 1 : anchors[index - 1]! + 1;
      unit(anchor, decode++, false, 'P', true);
      for (let frame = start; frame < anchor; frame++) unit(frame, decode++, false, 'B', options.pyramid === true && frame === start + Math.floor((anchor - start) / 2));
    }
  }
  return units;
}

function plan(intervalMs: number, units: PlannerUnit<number>[]) {
  const planner = new FeedPlanner<number>({ intervalMs, maxHeldBytes: 1 << 30 });
  const fed: Array<{ decode: number; timeMs: number; slot?: number }> = [];
  for (const unit of units) for (const item of planner.offer(unit)) fed.push({ decode: item.unit.payload, timeMs: item.unit.timeMs, slot: item.slot });
  return { planner, fed, chosen: fed.filter((item) => item.slot !== undefined) };
}

describe('FeedPlanner', () => {
  it('feeds only keyframes when they come once an interval, one per slot', () => {
    const { fed, chosen, planner } = plan(1000, stream({ fps: 30, gopFrames: 30, frames: 300, b: 3 }));
    expect(chosen.map((item) => item.slot)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // The first GOP is decoded through until its length is known; after that, keyframes alone.
    expect(fed.filter((item) => item.timeMs > 1000).every((item) => item.slot !== undefined)).toBe(true);
    expect(planner.counts).toMatchObject({ keyframeTargets: 10, interiorTargets: 0 });
  });

  it('takes the keyframe nearest each slot when there are several per slot', () => {
    const { chosen } = plan(4000, stream({ fps: 30, gopFrames: 30, frames: 600 }));
    expect(chosen.map((item) => item.timeMs)).toEqual([0, 4000, 8000, 12000, 16000]);
  });

  it('fills every slot of a 2 s GOP at 1 s, from inside the GOP, never choosing a picture nothing refers to', () => {
    const units = stream({ fps: 30, gopFrames: 60, frames: 600, b: 3, pyramid: true });
    const { fed, chosen } = plan(1000, units);
    expect(chosen.map((item) => item.slot)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    const byDecode = new Map(units.map((unit) => [unit.payload, unit]));
    for (const item of fed) expect(byDecode.get(item.decode)!.info.reference).toBe(true);
    for (const item of chosen) expect(['I', 'P']).toContain(byDecode.get(item.decode)!.info.sliceType);
    // Fed in decode order, without gaps in the references from each keyframe on.
    expect(fed.map((item) => item.decode)).toEqual([...fed.map((item) => item.decode)].sort((a, b) => a - b));
  });

  it('fills every slot of an interval shorter than the references are apart at the slot middle (0.2 s, P every 133 ms)', () => {
    const { chosen } = plan(200, stream({ fps: 30, gopFrames: 30, frames: 300, b: 3 }));
    // Every slot, none skipped: 50 whole ones, and the last, which the stream ends inside of.
    expect(chosen.map((item) => item.slot)).toEqual(Array.from({ length: 51 }, (_, slot) => slot));
    // Each lies in its own slot.
    for (const item of chosen) expect(slotOf(item.timeMs, 0, 200)).toBe(item.slot);
  });

  it('fills every slot at 0.2 s when the encoder varies how many B-frames stand between references (adaptive B)', () => {
    // 30 fps, a keyframe every 30 frames, P pictures 1 to 4 frames apart as x264's b-adapt places them.
    const { chosen } = plan(200, stream({ fps: 30, gopFrames: 30, frames: 300, anchors: [4, 6, 9, 13, 14, 18, 22, 23, 27, 29] }));
    // Every slot, none skipped: 50 whole ones, and the last, which the stream ends inside of.
    expect(chosen.map((item) => item.slot)).toEqual(Array.from({ length: 51 }, (_, slot) => slot));
    for (const item of chosen) expect(slotOf(item.timeMs, 0, 200)).toBe(item.slot);
  });

  it('holds references while keyframes are expected in time, and feeds them just before a late GOP picture', () => {
    // 1 s GOPs, then the encoder stretches one GOP to 3 s.
    const first = stream({ fps: 10, gopFrames: 10, frames: 50 });
    const stretched = stream({ fps: 10, gopFrames: 30, frames: 30 }).map((unit) => ({ ...unit, timeMs: unit.timeMs + 5000, payload: unit.payload + 1000 }));
    const { chosen, fed } = plan(1000, [...first, ...stretched]);
    expect(chosen.map((item) => item.slot)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // Slot 6 waited for its keyframe, then got a picture from the GOP, references before it.
    const slot6 = fed.findIndex((item) => item.slot === 6);
    expect(fed[slot6]!.timeMs).toBeGreaterThanOrEqual(6000 + 250);
    expect(fed.slice(0, slot6).some((item) => item.timeMs === 5000)).toBe(true);
  });

  it('decodes an open GOP without gaps, and skips the leading pictures of the first GOP it has no references for', () => {
    const open = (timeMs: number, keyframe: boolean, sliceType: SliceType, reference: boolean, payload: number): PlannerUnit<number> => ({
      timeMs, keyframe, info: { idr: false, sliceType, reference }, bytes: 1000, payload,
    });
    const units = [
      // Joined at an open GOP's I picture: the B shown before it refers to the GOP we never had.
      open(1000, true, 'I', true, 0), open(933, false, 'B', true, 1), open(1100, false, 'P', true, 2), open(1033, false, 'B', false, 3),
      open(1200, false, 'P', true, 4), open(2000, true, 'I', true, 5), open(1933, false, 'B', true, 6), open(2100, false, 'P', true, 7),
    ];
    const { fed, planner } = plan(1000, units);
    // Leading B of the first GOP skipped; the second GOP's leading B-reference decoded (its references are in).
    expect(fed.map((item) => item.decode)).toEqual([0, 2, 4, 5, 6, 7]);
    expect(planner.decodesWithoutGaps).toBe(true);
  });

  it('waits for an intra refresh to complete before choosing, then fills every slot', () => {
    const { chosen } = plan(1000, stream({ fps: 30, gopFrames: 60, frames: 600, refresh: 60 }));
    expect(chosen[0]!.timeMs).toBeGreaterThanOrEqual(2000);
    expect(chosen.map((item) => item.slot)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });

  it('after a reset (new decoder), waits for the next keyframe', () => {
    const units = stream({ fps: 10, gopFrames: 20, frames: 60 });
    const planner = new FeedPlanner<number>({ intervalMs: 1000, maxHeldBytes: 1 << 30 });
    for (const unit of units.slice(0, 25)) planner.offer(unit);
    planner.reset();
    const after = units.slice(25).flatMap((unit) => planner.offer(unit));
    expect(after[0]!.unit.keyframe).toBe(true);
  });

  it('feeds held references at once rather than hold more than its bound', () => {
    const planner = new FeedPlanner<number>({ intervalMs: 1000, maxHeldBytes: 5_000 });
    const units = stream({ fps: 10, gopFrames: 10, frames: 40 });
    const stretched = stream({ fps: 10, gopFrames: 100, frames: 100 }).map((unit) => ({ ...unit, timeMs: unit.timeMs + 4000 }));
    let held = 0;
    for (const unit of [...units, ...stretched]) {
      const fed = planner.offer(unit).length;
      held = fed === 0 ? held + unit.bytes : 0;
      expect(held).toBeLessThanOrEqual(6_000);
    }
  });

  it('names slots on a grid centred on the first keyframe', () => {
    expect(slotOf(10_499, 0, 1000)).toBe(10);
    expect(slotOf(10_500, 0, 1000)).toBe(11);
    expect(slotOf(9_500, 0, 1000)).toBe(10);
  });
});

describe('StreamTimeline', () => {
  it('starts a connection on the wall clock and follows the source clock within it', () => {
    const timeline = new StreamTimeline();
    expect(timeline.mapDts(5_000, 1_000_000)).toBe(1_000_000);
    expect(timeline.mapDts(5_033, 1_000_100)).toBe(1_000_033);
  });

  it('continues forward when a publisher restarts its timestamps, and counts it', () => {
    const timeline = new StreamTimeline();
    timeline.mapDts(40_000, 1_000_000);
    timeline.mapDts(41_000, 1_001_000);
    // Republished 3 s later, timestamps from 0.
    expect(timeline.mapDts(0, 1_004_000)).toBe(1_004_000);
    expect(timeline.mapDts(1_000, 1_005_000)).toBe(1_005_000);
    expect(timeline.restarts).toBe(1);
  });

  it('treats a jump far ahead of the wall clock as a new clock, and a small step back as jitter', () => {
    const timeline = new StreamTimeline();
    timeline.mapDts(1_000, 0);
    expect(timeline.mapDts(3_600_000, 1_000)).toBe(1_000);
    expect(timeline.mapDts(3_599_950, 1_040)).toBe(1_000);
    expect(timeline.restarts).toBe(1);
  });

  it('never goes back across connections', () => {
    const timeline = new StreamTimeline();
    timeline.mapDts(0, 1_000);
    // A burst at connect (a server's GOP cache) runs ahead of the wall clock.
    expect(timeline.mapDts(2_000, 1_100)).toBe(3_000);
    timeline.newConnection();
    expect(timeline.mapDts(0, 1_500)).toBe(3_001);
  });
});
