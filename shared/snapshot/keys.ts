import { utcStamp } from '../naming';
import type { ImageFormat } from '../outputs/images/format';

export function snapshotKey(prefix: string, timeMs: number, format: ImageFormat, withMillis: boolean): string {
  return `${prefix}${utcStamp(timeMs, withMillis)}.${format}`;
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
