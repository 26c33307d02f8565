import { describe, expect, it } from 'vitest';
import { RoomTimeMap } from '../../shared/recording/anchor-recorder';

describe('RoomTimeMap', () => {
  it('places a frame that came late at its time, by the smallest delay seen', () => {
    const map = new RoomTimeMap();
    // Timestamps from 5 s of the source's clock; the first frame is 30 ms late, the next on time.
    expect(map.place(5_000, 1_030)).toBe(1_030);
    expect(map.place(5_020, 1_020)).toBe(1_020);
    // A stall: these arrive together 300 ms late, and still go where they were taken.
    expect([map.place(5_040, 1_340), map.place(5_060, 1_340), map.place(5_080, 1_341)]).toEqual([1_040, 1_060, 1_080]);
  });

  it('places nothing on timestamps that stand still or go back, and starts again from the next that advances', () => {
    const map = new RoomTimeMap();
    expect(map.place(0, 100)).toBe(100);
    expect(map.place(0, 120)).toBeUndefined();
    expect(map.place(0, 140)).toBeUndefined();
    // A sender that restarted its clock: the old delay means nothing now.
    expect(map.place(10, 500)).toBe(500);
    expect(map.place(30, 520)).toBe(520);
  });
});
