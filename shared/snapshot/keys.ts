import { utcStamp } from '../naming';
import type { ImageFormat } from '../outputs/images/format';

export function snapshotKey(prefix: string, timeMs: number, format: ImageFormat, withMillis: boolean): string {
  return `${prefix}${utcStamp(timeMs, withMillis)}.${format}`;
}

export const latestKey = (prefix: string, format: ImageFormat) => `${prefix}latest.${format}`;
export const manifestKey = (prefix: string) => `${prefix}manifest.json`;
/** The JSON Lines journal kept current while capturing (one snapshot per line). */
export const journalKey = (prefix: string) => `${prefix}manifest.jsonl`;
