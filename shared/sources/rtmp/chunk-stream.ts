import { MediaFormatError } from '../../errors';
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
  /**
   * The buffer `payload` was received into, with the reader's `framing` room around it: a video
   * message becomes an FLV tag by writing its header and trailer in place, without a copy.
   */
  frame?: Buffer;
}

/** Room a reader leaves before and after each payload. */
export interface MessageFraming {
  before: number;
  after: number;
}

export class RtmpProtocolError extends MediaFormatError {}

const DEFAULT_CHUNK_SIZE = 128;
const SET_CHUNK_SIZE = 1;
const ABORT = 2;
const MAX_CHUNK_SIZE = 0xffffff;
/** A message larger than this (a 4K keyframe is a few MB) is not video we can use; refusing it bounds memory. */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
const EXTENDED_TIMESTAMP = 0xffffff;
const MESSAGE_HEADER_BYTES = [11, 7, 3, 0] as const;
/** Basic header (up to 3) + message header (up to 11) + extended timestamp (4). */
const MAX_CHUNK_HEADER_BYTES = 18;
/**
 * Unfinished messages held at once, over all chunk streams. A message's buffer is allocated whole
 * when its first header arrives, so this bounds what a server can make us allocate, not only what
 * it has sent.
 */
const MAX_PENDING_BYTES = 32 * 1024 * 1024;

/** 1, 2 or 3 bytes: chunk stream ids 0 and 1 in the first byte announce the longer forms. */
function basicHeaderBytes(first: number): number {
  const id = first & 0x3f;
  return id === 0 ? 2 : id === 1 ? 3 : 1;
}

interface ChunkStreamState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  /** The last header's timestamp field was 0xFFFFFF: continuation chunks repeat the 4-byte field. */
  extended: boolean;
  /** The message being received, allocated whole (with the framing room) when its first chunk's header is read. */
  frame: Buffer | undefined;
  payload: Buffer | undefined;
  received: number;
}

/**
 * Reads chunks as bytes arrive, in any pieces. Each payload byte is copied once, straight into
 * its message's buffer, and nothing of the input is kept: the caller may pass a buffer it reuses
 * for every read (the socket's `onread`), which spares an allocation and a copy per read.
 */
export class ChunkReader {
  private readonly streams = new Map<number, ChunkStreamState>();
  private chunkSize = DEFAULT_CHUNK_SIZE;
  /** The chunk header being read, when a read ended inside it. */
  private readonly header = Buffer.alloc(MAX_CHUNK_HEADER_BYTES);
  private headerBytes = 0;
  /** The chunk whose payload is being read, and how much of it is still to come. */
  private inChunk: ChunkStreamState | undefined;
  private chunkBytesLeft = 0;
  /** Bytes allocated for messages not yet whole. */
  private pendingBytes = 0;
  private readonly framed: boolean;

  constructor(private readonly framing: MessageFraming = { before: 0, after: 0 }) {
    this.framed = framing.before + framing.after > 0;
  }

  /** Bytes held for messages not yet whole (and a partly read header). */
  get bufferedBytes(): number {
    return this.pendingBytes + this.headerBytes;
  }

  private setChunkSize(size: number): void {
    if (!Number.isInteger(size) || size < 1 || size > MAX_CHUNK_SIZE) throw new RtmpProtocolError(`invalid chunk size ${size}`);
    this.chunkSize = size;
  }

  /** A partly received message on this chunk stream is to be dropped (Abort message). */
  private abort(chunkStreamId: number): void {
    const state = this.streams.get(chunkStreamId);
    if (state?.payload) {
      this.pendingBytes -= state.length;
      state.frame = undefined;
      state.payload = undefined;
      state.received = 0;
    }
  }

  /** Whole messages completed by these bytes, in order. `bytes` is not kept. */
  push(bytes: Buffer): RtmpMessage[] {
    const messages: RtmpMessage[] = [];
    let offset = 0;
    while (offset < bytes.length) {
      if (this.inChunk) {
        const state = this.inChunk;
        const count = Math.min(this.chunkBytesLeft, bytes.length - offset);
        bytes.copy(state.payload!, state.received, offset, offset + count);
        offset += count;
        state.received += count;
        this.chunkBytesLeft -= count;
        if (this.chunkBytesLeft === 0) this.endChunk(state, messages);
        continue;
      }
      // The header's length is known piece by piece: basic header, then message header, then
      // whether an extended timestamp follows.
      const needed = this.headerLength();
      if (this.headerBytes < needed) {
        const count = Math.min(needed - this.headerBytes, bytes.length - offset);
        bytes.copy(this.header, this.headerBytes, offset, offset + count);
        this.headerBytes += count;
        offset += count;
        continue;
      }
      this.startChunk(messages);
    }
    // A header that arrived whole at the very end of the input is read now, so that an empty
    // message completes without waiting for the next read.
    if (!this.inChunk && this.headerBytes > 0 && this.headerBytes === this.headerLength()) this.startChunk(messages);
    return messages;
  }

  /** The length of the chunk header being read, as far as its bytes so far tell. */
  private headerLength(): number {
    if (this.headerBytes === 0) return 1;
    const format = this.header[0]! >> 6;
    const basic = basicHeaderBytes(this.header[0]!);
    const base = basic + MESSAGE_HEADER_BYTES[format]!;
    if (this.headerBytes < base) return base;
    const extended = format < 3 ? this.header.readUIntBE(basic, 3) === EXTENDED_TIMESTAMP : (this.streams.get(this.chunkStreamId(basic))?.extended ?? false);
    return base + (extended ? 4 : 0);
  }

  private chunkStreamId(basic: number): number {
    if (basic === 2) return 64 + this.header[1]!;
    if (basic === 3) return 64 + this.header[1]! + this.header[2]! * 256;
    return this.header[0]! & 0x3f;
  }

  /** The header is whole: updates its chunk stream and starts reading the chunk's payload. */
  private startChunk(messages: RtmpMessage[]): void {
    const head = this.header;
    const format = head[0]! >> 6;
    const basic = basicHeaderBytes(head[0]!);
    const chunkStreamId = this.chunkStreamId(basic);
    const headerLength = this.headerLength();
    this.headerBytes = 0;

    let state = this.streams.get(chunkStreamId);
    if (!state) {
      if (format !== 0) throw new RtmpProtocolError(`chunk stream ${chunkStreamId} starts with a type ${format} header`);
      state = { timestamp: 0, delta: 0, length: 0, type: 0, streamId: 0, extended: false, frame: undefined, payload: undefined, received: 0 };
      this.streams.set(chunkStreamId, state);
    }
    const continuing = format === 3 && state.payload !== undefined;
    let offset = basic;
    let timestampField = 0;
    if (format < 3) {
      timestampField = head.readUIntBE(offset, 3);
      offset += 3;
    }
    const extended = format < 3 ? timestampField === EXTENDED_TIMESTAMP : state.extended;
    if (extended) timestampField = head.readUInt32BE(headerLength - 4);
    if (!continuing) {
      const payloadLength = format < 2 ? head.readUIntBE(offset, 3) : state.length;
      if (payloadLength > MAX_MESSAGE_BYTES) throw new RtmpProtocolError(`message of ${payloadLength} bytes is too large`);
      if (format === 0) {
        state.timestamp = timestampField;
        state.delta = 0;
        state.length = payloadLength;
        state.type = head[offset + 3]!;
        state.streamId = head.readUInt32LE(offset + 4);
      } else {
        if (format < 3) state.delta = timestampField;
        if (format === 1) {
          state.length = payloadLength;
          state.type = head[offset + 3]!;
        }
        state.timestamp = (state.timestamp + state.delta) >>> 0;
      }
      state.extended = extended;
      if (this.pendingBytes + state.length > MAX_PENDING_BYTES) throw new RtmpProtocolError('the server sent more unfinished messages than we can hold');
      this.pendingBytes += state.length;
      const { before, after } = this.framing;
      state.frame = Buffer.allocUnsafe(before + state.length + after);
      state.payload = state.frame.subarray(before, before + state.length);
      state.received = 0;
    }
    this.inChunk = state;
    this.chunkBytesLeft = Math.min(this.chunkSize, state.length - state.received);
    if (this.chunkBytesLeft === 0) this.endChunk(state, messages);
  }

  /** A chunk's payload is in: the message it completes, if any, is passed on. */
  private endChunk(state: ChunkStreamState, messages: RtmpMessage[]): void {
    this.inChunk = undefined;
    if (state.received < state.length) return;
    const message: RtmpMessage = { type: state.type, streamId: state.streamId, timestamp: state.timestamp, payload: state.payload! };
    if (this.framed) message.frame = state.frame;
    this.pendingBytes -= state.length;
    state.frame = undefined;
    state.payload = undefined;
    state.received = 0;
    // Chunk size and abort apply to the very next chunk: they cannot wait for the caller.
    if (message.type === SET_CHUNK_SIZE && message.payload.length >= 4) this.setChunkSize(message.payload.readUInt32BE(0) & 0x7fffffff);
    else if (message.type === ABORT && message.payload.length >= 4) this.abort(message.payload.readUInt32BE(0));
    messages.push(message);
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
