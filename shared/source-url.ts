import { isMetadataAddress } from './network-guard';

/**
 * What a user-supplied media URL may be. Checked before anything connects; ffmpeg's own
 * -protocol_whitelist keeps nested opens (HLS segments, redirects) off file:, concat:, pipe: and
 * friends too.
 */
export const SOURCE_SCHEMES = ['rtmp', 'rtmps', 'http', 'https'] as const;
export type SourceScheme = (typeof SOURCE_SCHEMES)[number];

const MAX_URL_LENGTH = 2048;

/** Returns why the URL is refused, or null when it is acceptable. */
export function sourceUrlProblem(raw: string): string | null {
  if (raw.length === 0) return 'must not be empty';
  if (raw.length > MAX_URL_LENGTH) return `must be at most ${MAX_URL_LENGTH} characters`;
  if (raw.startsWith('-')) return 'must be a URL, not an option';
  // Control characters and whitespace can split arguments or smuggle headers.
  if (/[\u0000-\u0020\u007f]/.test(raw)) return 'must not contain spaces or control characters';
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(raw)?.[1]?.toLowerCase();
  if (!scheme || !(SOURCE_SCHEMES as readonly string[]).includes(scheme)) {
    return `must use one of ${SOURCE_SCHEMES.map((s) => s + '://').join(', ')}`;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a valid URL';
  }
  if (!raw.toLowerCase().startsWith(`${scheme}://`) || url.hostname === '') return 'must include a host';
  if (isMetadataAddress(url.hostname)) return 'must not point at a cloud metadata or link-local address';
  return null;
}

/**
 * The protocols ffmpeg may open, given the loopback URL it reads (it never connects anywhere
 * else: see sources/hls-proxy.ts and sources/rtmp-forwarder.ts). HLS keys need `crypto`.
 */
export function protocolWhitelist(ffmpegInputUrl: string): string {
  return ffmpegInputUrl.toLowerCase().startsWith('rtmp:') ? 'rtmp,tcp' : 'http,tcp,crypto';
}
