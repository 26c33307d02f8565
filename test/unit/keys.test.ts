import { describe, expect, it } from 'vitest';
import { normalizePrefix, utcStamp } from '../../shared/naming';
import { KeyClock, latestKey, manifestKey, snapshotKey } from '../../shared/snapshot/keys';

const t = Date.UTC(2026, 10, 20, 9, 5, 7, 42);

describe('object keys', () => {
  it('are seed-compatible: {dst}/{YYYYMMDDHHmmss}.{ext} in UTC', () => {
    expect(snapshotKey('dst/', t, 'jpg', false)).toBe('dst/20261120090507.jpg');
    expect(utcStamp(t, true)).toBe('20261120090507042');
  });

  it('normalise dst to a prefix', () => {
    expect(normalizePrefix(undefined)).toBe('');
    expect(normalizePrefix('/')).toBe('');
    expect(normalizePrefix('/a//b/')).toBe('a/b/');
    expect(latestKey('a/', 'png')).toBe('a/latest.png');
    expect(manifestKey('')).toBe('manifest.json');
  });

  it('sort in capture order', () => {
    const keys = [t, t + 999, t + 1000, t + 61_000].map((ms) => snapshotKey('', ms, 'jpg', true));
    expect([...keys].sort()).toEqual(keys);
  });
});

describe('KeyClock', () => {
  it('names slot k of a run anchor + k*interval', () => {
    const clock = new KeyClock(1000);
    expect([0, 1, 2, 5].map((slot) => clock.timeFor(t, slot))).toEqual([t, t + 1000, t + 2000, t + 5000]);
  });

  it('never repeats or goes back, even when a reconnect restarts the slots', () => {
    const clock = new KeyClock(1000);
    const first = [0, 1, 2].map((slot) => clock.timeFor(t, slot));
    const afterReconnect = [0, 1].map((slot) => clock.timeFor(t + 1500, slot));
    const all = [...first, ...afterReconnect];
    const seconds = all.map((ms) => utcStamp(ms, false));
    expect(new Set(seconds).size).toBe(all.length);
    expect([...seconds].sort()).toEqual(seconds);
  });

  it('gives distinct second-resolution names for any interval of 1 s or more', () => {
    const clock = new KeyClock(1500);
    const names = Array.from({ length: 50 }, (_, slot) => utcStamp(clock.timeFor(t, slot), false));
    expect(new Set(names).size).toBe(50);
  });
});
