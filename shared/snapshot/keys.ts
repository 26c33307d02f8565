import type { ImageFormat } from '../images/format';

/** `a/b/` style prefix from a user's `dst`: no leading or doubled slashes; '' is the bucket root. */
export function normalizePrefix(dst: string | undefined): string {
  const trimmed = (dst ?? '').split('/').filter((part) => part !== '').join('/');
  return trimmed === '' ? '' : `${trimmed}/`;
}

/** UTC `YYYYMMDDHHmmss`, plus `SSS` when sub-second snapshots need it. */
export function snapshotTimestamp(timeMs: number, withMillis: boolean): string {
  const iso = new Date(timeMs).toISOString(); // 2026-11-20T22:07:01.123Z
  const stamp = iso.slice(0, 19).replace(/[-T:]/g, '');
  return withMillis ? stamp + iso.slice(20, 23) : stamp;
}

export function snapshotKey(prefix: string, timeMs: number, format: ImageFormat, withMillis: boolean): string {
  return `${prefix}${snapshotTimestamp(timeMs, withMillis)}.${format}`;
}

export const latestKey = (prefix: string, format: ImageFormat) => `${prefix}latest.${format}`;
export const manifestKey = (prefix: string) => `${prefix}manifest.json`;
/** The JSON Lines journal kept current while capturing (one snapshot per line). */
export const journalKey = (prefix: string) => `${prefix}manifest.jsonl`;

/**
 * Turns snapshot slots into key times. A run's slot k is named `anchor + k*interval`,
 * so names follow the stream's own clock (no jitter from upload or disk), and a
 * retried invocation over the same moments writes the same keys. Times only move
 * forward, by at least one interval, so two snapshots never share a key, across
 * reconnects too.
 */
export class KeyClock {
  private lastTimeMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly intervalMs: number) {}

  timeFor(runAnchorMs: number, slot: number): number {
    const timeMs = Math.max(runAnchorMs + slot * this.intervalMs, this.lastTimeMs + this.intervalMs);
    this.lastTimeMs = timeMs;
    return timeMs;
  }
}
