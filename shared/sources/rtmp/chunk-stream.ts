import { ByteQueue } from '../../media/byte-queue';

/**
 * RTMP's chunk stream: messages cut into chunks of the negotiated size, interleaved across chunk
 * stream ids, each chunk header compressed against the previous one of its chunk stream. The
 * reader reassembles whole messages (applying the peer's chunk size and abort messages itself);
 * the writer sends ours (always a full header, then continuation chunks).
 */

export interface RtmpMessage {
  type: number;
  /** The message stream id (0 for control and NetConnection commands). */
  streamId: number;
  /** ms, 32 bits. */
  timestamp: number;
  payload: Buffer;
}

export class RtmpProtocolError extends Error {}

const DEFAULT_CHUNK_SIZE = 128;
const SET_CHUNK_SIZE = 1;
const ABORT = 2;
const MAX_CHUNK_SIZE = 0xffffff;
/** A message larger than this (a 4K keyframe is a few MB) is not video we can use; refusing it bounds memory. */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
const EXTENDED_TIMESTAMP = 0xffffff;
const MESSAGE_HEADER_BYTES = [11, 7, 3, 0] as const;

interface ChunkStreamState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  /** The last header's timestamp field was 0xFFFFFF: continuation chunks repeat the 4-byte field. */
  extended: boolean;
  parts: Buffer[];
  received: number;
}

export class ChunkReader {
  private readonly pending = new ByteQueue();
  private readonly streams = new Map<number, ChunkStreamState>();
  private chunkSize = DEFAULT_CHUNK_SIZE;

  /** Bytes received and not yet part of a whole chunk. */
  get bufferedBytes(): number {
    return this.pending.length;
  }

  private setChunkSize(size: number): void {
    if (!Number.isInteger(size) || size < 1 || size > MAX_CHUNK_SIZE) throw new RtmpProtocolError(`invalid chunk size ${size}`);
    this.chunkSize = size;
  }

  /** A partly received message on this chunk stream is to be dropped (Abort message). */
  private abort(chunkStreamId: number): void {
    const state = this.streams.get(chunkStreamId);
    if (state) {
      state.parts = [];
      state.received = 0;
    }
  }

  /** Whole messages completed by these bytes, in order. */
  push(bytes: Buffer): RtmpMessage[] {
    this.pending.push(bytes);
    const messages: RtmpMessage[] = [];
    for (;;) {
      const message = this.readChunk();
      if (message === false) return messages;
      if (!message) continue;
      // Chunk size and abort apply to the very next chunk: they cannot wait for the caller.
      if (message.type === SET_CHUNK_SIZE && message.payload.length >= 4) this.setChunkSize(message.payload.readUInt32BE(0) & 0x7fffffff);
      else if (message.type === ABORT && message.payload.length >= 4) this.abort(message.payload.readUInt32BE(0));
      messages.push(message);
    }
  }

  /** One chunk, when it is all here: false when more bytes are needed; the message it completes, if any. */
  private readChunk(): RtmpMessage | undefined | false {
    const available = this.pending.length;
    if (available < 1) return false;
    const first = this.pending.peek(1)[0]!;
    const format = first >> 6;
    let chunkStreamId = first & 0x3f;
    let basicBytes = 1;
    if (chunkStreamId === 0) basicBytes = 2;
    else if (chunkStreamId === 1) basicBytes = 3;
    const headerBytes = basicBytes + MESSAGE_HEADER_BYTES[format]!;
    if (available < headerBytes) return false;
    const head = this.pending.peek(headerBytes);
    if (basicBytes === 2) chunkStreamId = 64 + head[1]!;
    else if (basicBytes === 3) chunkStreamId = 64 + head[1]! + head[2]! * 256;

    let state = this.streams.get(chunkStreamId);
    if (!state) {
      if (format !== 0) throw new RtmpProtocolError(`chunk stream ${chunkStreamId} starts with a type ${format} header`);
      state = { timestamp: 0, delta: 0, length: 0, type: 0, streamId: 0, extended: false, parts: [], received: 0 };
      this.streams.set(chunkStreamId, state);
    }
    const continuing = format === 3 && state.received > 0;
    let timestampField = 0;
    let offset = basicBytes;
    if (format < 3) {
      timestampField = head.readUIntBE(offset, 3);
      offset += 3;
    }
    const extended = format < 3 ? timestampField === EXTENDED_TIMESTAMP : state.extended;
    const total = headerBytes + (extended ? 4 : 0);
    const payloadLength = format < 2 ? head.readUIntBE(offset, 3) : state.length;
    if (payloadLength > MAX_MESSAGE_BYTES) throw new RtmpProtocolError(`message of ${payloadLength} bytes is too large`);
    const remaining = (continuing ? state.length - state.received : payloadLength);
    const chunkPayload = Math.min(this.chunkSize, remaining);
    if (available < total + chunkPayload) return false;

    const chunk = this.pending.take(total + chunkPayload);
    if (extended) timestampField = chunk.readUInt32BE(headerBytes);
    if (!continuing) {
      if (format === 0) {
        state.timestamp = timestampField;
        state.delta = 0;
        state.length = payloadLength;
        state.type = chunk[offset + 3]!;
        state.streamId = chunk.readUInt32LE(offset + 4);
      } else {
        if (format < 3) state.delta = timestampField;
        if (format === 1) {
          state.length = payloadLength;
          state.type = chunk[offset + 3]!;
        }
        state.timestamp = (state.timestamp + state.delta) >>> 0;
      }
      state.extended = extended;
      state.parts = [];
      state.received = 0;
    }
    // A copy: the chunk is a view into bytes that the queue lets go of.
    state.parts.push(Buffer.from(chunk.subarray(total)));
    state.received += chunkPayload;
    if (state.received < state.length) return undefined;
    const payload = state.parts.length === 1 ? state.parts[0]! : Buffer.concat(state.parts, state.length);
    state.parts = [];
    state.received = 0;
    return { type: state.type, streamId: state.streamId, timestamp: state.timestamp, payload };
  }
}

/** A message as chunks: a type 0 header, then type 3 headers for the rest. */
export function encodeChunks(chunkStreamId: number, message: RtmpMessage, chunkSize: number): Buffer {
  if (chunkStreamId < 2 || chunkStreamId > 63) throw new RangeError('we only use chunk stream ids 2–63');
  const extended = message.timestamp >= EXTENDED_TIMESTAMP;
  const head = Buffer.alloc(12 + (extended ? 4 : 0));
  head[0] = chunkStreamId;
  head.writeUIntBE(extended ? EXTENDED_TIMESTAMP : message.timestamp, 1, 3);
  head.writeUIntBE(message.payload.length, 4, 3);
  head[7] = message.type;
  head.writeUInt32LE(message.streamId, 8);
  if (extended) head.writeUInt32BE(message.timestamp, 12);
  const parts: Buffer[] = [head];
  for (let offset = 0; offset < message.payload.length; offset += chunkSize) {
    if (offset > 0) {
      parts.push(Buffer.from([0xc0 | chunkStreamId]));
      if (extended) parts.push(head.subarray(12));
    }
    parts.push(message.payload.subarray(offset, offset + chunkSize));
  }
  return Buffer.concat(parts);
}
