import { MediaFormatError } from '../errors';
import { ByteQueue } from './byte-queue';

/**
 * A streaming FLV reader: cuts a byte stream into whole tags, so a tag is only ever passed on
 * complete. Used between the network reader (ffmpeg remuxing the source to FLV) and the imager,
 * which then gets only whole packets and sees a clean end of input when we stop.
 */

export const FLV_HEADER_BYTES = 9;
const PREVIOUS_TAG_SIZE_BYTES = 4;
const TAG_HEADER_BYTES = 11;
export const FLV_TAG_AUDIO = 8;
export const FLV_TAG_VIDEO = 9;
const AVC_CODEC_ID = 7;
/** A tag larger than this is not an FLV we understand; refusing it bounds memory. */
const MAX_TAG_DATA_BYTES = 16 * 1024 * 1024;

export interface FlvTag {
  type: number;
  /** Decode time in ms (the tag timestamp, 32 bits with its extension byte). */
  dts: number;
  /** Tag header + data + the following previous-tag-size: the tag exactly as it is re-sent. */
  bytes: Buffer;
  /** The data part (a view into `bytes`). */
  data: Buffer;
}

export interface VideoTagInfo {
  codecId: number;
  keyframe: boolean;
  /** For AVC: 0 sequence header, 1 NAL units, 2 end of sequence. */
  avcPacketType?: number;
  /** Presentation time in ms: dts + the AVC composition time. */
  pts: number;
}

export class FlvFormatError extends MediaFormatError {}

/** Splits pushed chunks into the FLV file header and whole tags. */
export class FlvTagReader {
  private readonly pending = new ByteQueue();
  private header: Buffer | undefined;

  /** The 9-byte file header plus the first previous-tag-size, once seen. */
  get fileHeader(): Buffer | undefined {
    return this.header;
  }

  /** Bytes received but not yet part of a whole tag. */
  get bufferedBytes(): number {
    return this.pending.length;
  }

  push(chunk: Buffer): FlvTag[] {
    this.pending.push(chunk);
    const tags: FlvTag[] = [];
    if (!this.header) {
      const headerBytes = FLV_HEADER_BYTES + PREVIOUS_TAG_SIZE_BYTES;
      if (this.pending.length < headerBytes) return tags;
      const head = this.take(headerBytes);
      if (head.toString('latin1', 0, 3) !== 'FLV') throw new FlvFormatError('not an FLV stream');
      this.header = head;
    }
    while (this.pending.length >= TAG_HEADER_BYTES) {
      const head = this.pending.peek(TAG_HEADER_BYTES);
      const dataSize = head.readUIntBE(1, 3);
      if (dataSize > MAX_TAG_DATA_BYTES) throw new FlvFormatError(`FLV tag of ${dataSize} bytes is too large`);
      const total = TAG_HEADER_BYTES + dataSize + PREVIOUS_TAG_SIZE_BYTES;
      if (this.pending.length < total) break;
      const bytes = this.take(total);
      tags.push({
        type: bytes[0]! & 0x1f,
        dts: (bytes.readUIntBE(4, 3) | (bytes[7]! << 24)) >>> 0,
        bytes,
        data: bytes.subarray(TAG_HEADER_BYTES, TAG_HEADER_BYTES + dataSize),
      });
    }
    return tags;
  }

  private take(length: number): Buffer {
    // A copy, so a kept tag does not pin the rest of a large chunk in memory.
    return Buffer.from(this.pending.take(length));
  }
}

export function videoTagInfo(tag: FlvTag): VideoTagInfo | undefined {
  if (tag.type !== FLV_TAG_VIDEO || tag.data.length < 1) return undefined;
  const first = tag.data[0]!;
  const codecId = first & 0x0f;
  const keyframe = first >> 4 === 1;
  if (codecId !== AVC_CODEC_ID || tag.data.length < 5) return { codecId, keyframe, pts: tag.dts };
  // Composition time: signed 24-bit.
  const cts = (tag.data.readIntBE(2, 3));
  return { codecId, keyframe, avcPacketType: tag.data[1], pts: tag.dts + cts };
}

export const isAvc = (info: VideoTagInfo | undefined) => info?.codecId === AVC_CODEC_ID;

/** A copy of `tag` with its data replaced (sizes updated); timestamps and type are kept. */
export function withTagData(tag: FlvTag, data: Buffer): FlvTag {
  return flvTag(tag.type, tag.dts, data);
}

/**
 * A copy of an AVC video tag with new decode and presentation times (ms): the tag timestamp is
 * the decode time, the composition time carries the difference.
 */
export function retimedVideoTag(tag: FlvTag, dtsMs: number, ptsMs: number): FlvTag {
  const bytes = Buffer.from(tag.bytes);
  const dts = writeTagTime(bytes, Math.max(0, Math.round(dtsMs)));
  const data = bytes.subarray(TAG_HEADER_BYTES, bytes.length - PREVIOUS_TAG_SIZE_BYTES);
  if (data.length >= 5 && (data[0]! & 0x0f) === AVC_CODEC_ID) data.writeIntBE(Math.round(ptsMs) - dts, 2, 3);
  return { type: tag.type, dts, bytes, data };
}

/**
 * A tag at another time without copying it: a new 11-byte header, then the tag's own data and
 * trailer. (The composition time in an AVC tag's data is pts - dts, the same on any clock.)
 */
export function retimedTagParts(tag: FlvTag, timeMs: number): [header: Buffer, rest: Buffer] {
  const header = Buffer.from(tag.bytes.subarray(0, TAG_HEADER_BYTES));
  writeTagTime(header, Math.max(0, Math.round(timeMs)));
  return [header, tag.bytes.subarray(TAG_HEADER_BYTES)];
}

/** Writes a tag header's timestamp (24 bits and the extension byte); returns it as written. */
function writeTagTime(tagBytes: Buffer, timeMs: number): number {
  const time = timeMs >>> 0;
  tagBytes.writeUIntBE(time & 0xffffff, 4, 3);
  tagBytes[7] = (time >>> 24) & 0xff;
  return time;
}

/** An FLV tag from a message's type, time (ms) and payload, as an RTMP server sends them. */
export function flvTag(type: number, timestampMs: number, payload: Buffer): FlvTag {
  // Every byte is written: no zero-fill of a frame's worth of memory first.
  const bytes = Buffer.allocUnsafe(TAG_HEADER_BYTES + payload.length + PREVIOUS_TAG_SIZE_BYTES);
  payload.copy(bytes, TAG_HEADER_BYTES);
  return flvTagInFrame(type, timestampMs, bytes);
}

/** The room an FLV tag needs around its data: what a reader leaves for `flvTagInFrame`. */
export const FLV_TAG_FRAMING = { before: TAG_HEADER_BYTES, after: PREVIOUS_TAG_SIZE_BYTES } as const;

/** A tag made in place: `frame` holds the data with FLV_TAG_FRAMING room around it. */
export function flvTagInFrame(type: number, timestampMs: number, frame: Buffer): FlvTag {
  const dataSize = frame.length - TAG_HEADER_BYTES - PREVIOUS_TAG_SIZE_BYTES;
  frame[0] = type;
  frame.writeUIntBE(dataSize, 1, 3);
  const dts = writeTagTime(frame, timestampMs);
  frame.writeUIntBE(0, 8, 3); // stream id
  frame.writeUInt32BE(TAG_HEADER_BYTES + dataSize, TAG_HEADER_BYTES + dataSize);
  return { type, dts, bytes: frame, data: frame.subarray(TAG_HEADER_BYTES, TAG_HEADER_BYTES + dataSize) };
}

/** The 9-byte FLV file header and the first previous-tag-size, for a stream we assemble. */
export function flvFileHeader(tracks: { video: boolean; audio: boolean }): Buffer {
  const flags = (tracks.audio ? 0x04 : 0) | (tracks.video ? 0x01 : 0);
  return Buffer.from([0x46, 0x4c, 0x56, 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]);
}

export const FLV_VIDEO_FILE_HEADER = flvFileHeader({ video: true, audio: false });
