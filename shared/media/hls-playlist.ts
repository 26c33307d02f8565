import { SEGMENT_MAX_SEC } from './cmaf';

/**
 * An HLS media playlist over CMAF segments (RFC 8216): EVENT while the recording grows, so a
 * player may start from the beginning and follow the live edge; ENDLIST once it is complete.
 * Object names are relative, so the playlist works wherever its folder is served from.
 */

const PLAYLIST_NAME = 'index.m3u8';
const INIT_NAME = 'init.mp4';
export const PLAYLIST_CONTENT_TYPE = 'application/vnd.apple.mpegurl';
export const SEGMENT_CONTENT_TYPE = 'video/iso.segment';

/** Segment `sequence`'s object name; zero-padded so a listing sorts in playing order. */
const segmentName = (sequence: number) => `seg-${String(sequence).padStart(6, '0')}.m4s`;

/** The object keys of an HLS recording in the folder `dirKey` (ending in '/'): one naming for the upload and recovery. */
export function hlsKeys(dirKey: string): { playlist: string; init: string; segment: (sequence: number) => string } {
  return { playlist: `${dirKey}${PLAYLIST_NAME}`, init: `${dirKey}${INIT_NAME}`, segment: (sequence) => `${dirKey}${segmentName(sequence)}` };
}

export interface PlaylistSegment {
  sequence: number;
  durationSec: number;
}

/** The playlist listing `segments` (consecutive from 0), ended or still growing. */
export function mediaPlaylist(segments: readonly PlaylistSegment[], ended: boolean): string {
  const lines = [
    '#EXTM3U',
    // 7: EXT-X-MAP in a playlist without I-frames-only needs 6 or more.
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${SEGMENT_MAX_SEC}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:EVENT',
    '#EXT-X-INDEPENDENT-SEGMENTS',
    `#EXT-X-MAP:URI="${INIT_NAME}"`,
  ];
  for (const segment of segments) lines.push(`#EXTINF:${segment.durationSec.toFixed(3)},`, segmentName(segment.sequence));
  if (ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}
