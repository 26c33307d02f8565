import { describe, expect, it } from 'vitest';
import { normalizePrefix, utcStamp } from '../../shared/naming';
import { latestKey, manifestKey, snapshotKey } from '../../shared/snapshot/keys';

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
