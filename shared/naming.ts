/** Object-key naming both functions use. */

/** `a/b/` style prefix from a user's path: no leading or doubled slashes; '' is the bucket root. */
export function normalizePrefix(dst: string | undefined): string {
  const trimmed = (dst ?? '').split('/').filter((part) => part !== '').join('/');
  return trimmed === '' ? '' : `${trimmed}/`;
}

/** UTC `YYYYMMDDHHmmss`, plus `SSS` when sub-second names need it. */
export function utcStamp(timeMs: number, withMillis = false): string {
  const iso = new Date(timeMs).toISOString(); // 2026-11-20T22:07:01.123Z
  const stamp = iso.slice(0, 19).replace(/[-T:]/g, '');
  return withMillis ? stamp + iso.slice(20, 23) : stamp;
}

/** Keeps ids readable in keys and file names while making them safe path segments. */
export function safeSegment(value: string): string {
  return encodeURIComponent(value).replace(/^\./, '%2E');
}
