import type { FlvTag, VideoTagInfo } from '../media/flv';
import type { LivenessLimits } from '../liveness';

/**
 * A live source's video, one connection at a time, as whole FLV video tags: whatever received
 * it (our RTMP or HTTP-FLV client, or ffmpeg for HLS and as a fallback) and whatever the
 * container. Names are always resolved in Node, and every connection goes to the address that
 * was checked against the metadata/link-local guard.
 */

/** Which client received the stream; results report it. */
export type ReceptionPath = 'node-rtmp' | 'node-http-flv' | 'ffmpeg';

export type SourceEndReason =
  /** We stopped it. */
  | 'stopped'
  /** The server closed the connection or ended the stream. */
  | 'closed'
  /** Packets stopped coming (stall) or none came (no-first-frame). */
  | 'stalled'
  | 'no-first-frame'
  /** It could not be used: refused, not found, unreachable, not H.264, a crash… */
  | 'failed'
  /** Our client does not speak what the server does (ffmpeg's may). */
  | 'unsupported'
  /** HTTP answered with an HLS playlist, not FLV: ffmpeg reads HLS. */
  | 'is-hls';

export interface SourceEnd {
  reason: SourceEndReason;
  /** Why, in words a user can act on (URLs redacted by the caller). */
  message?: string;
  /** For `failed`: refused, unresolvable, forbidden, not-found, rejected, unreachable, tls, crashed, not-h264… */
  code?: string;
  /** Video packets received on this connection. */
  packets: number;
  path: ReceptionPath;
}

export interface VideoSourceOptions {
  url: string;
  liveness: LivenessLimits;
  onVideoTag(tag: FlvTag, info: VideoTagInfo): void;
  /** Audio tags too, untouched (a recording wants them; snapshots do not ask). */
  onAudioTag?(tag: FlvTag): void;
}

export interface VideoSource {
  readonly path: ReceptionPath;
  readonly ended: Promise<SourceEnd>;
  /** Ends the connection now; every whole packet received has been passed on. */
  stop(): void;
}

/** A failed connection in words, for every client of a source. `address` is host:port. */
export function describeConnectionError(error: NodeJS.ErrnoException, address: string): Pick<SourceEnd, 'reason' | 'code' | 'message'> {
  const code = error.code;
  switch (code) {
    case 'ForbiddenSource':
      return { reason: 'failed', code: 'forbidden', message: error.message };
    case 'ECONNREFUSED':
      return { reason: 'failed', code: 'refused', message: `nothing is listening at ${address} (connection refused)` };
    case 'ENOTFOUND':
      return { reason: 'failed', code: 'unresolvable', message: 'the host name could not be resolved' };
    case 'EAI_AGAIN':
      return { reason: 'failed', code: 'dns-unavailable', message: 'the host name could not be resolved (DNS did not answer)' };
    case 'ECONNRESET':
    case 'EPIPE':
      return { reason: 'closed', message: `the connection was reset (${code})` };
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { reason: 'failed', code: 'unreachable', message: `${address} could not be reached (${code})` };
  }
  if (/CERT|certificate|SSL|TLS|self.signed/i.test(`${code} ${error.message}`)) return { reason: 'failed', code: 'tls', message: `TLS with ${address} failed: ${error.message}` };
  return { reason: 'failed', code: 'network', message: `${address}: ${error.message}` };
}
