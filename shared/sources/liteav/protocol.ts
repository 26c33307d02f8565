import * as z from 'zod';

/*
 * The pipes between Node and the room process (room_process.py): control commands and events are
 * JSON lines; audio and video each have a pipe carrying binary frames, each a fixed header, the user
 * id, the payload.
 */

/**
 * Payload length u32, kind u8, user id length u8, width | channels u16, height | sample rate u32,
 * frames dropped before this one u32, arrival ms f64, SDK pts ms f64, offset in the video ring f64
 * (-1: the payload follows the user id in the pipe): little-endian, 40 bytes. Must match
 * FRAME_HEADER in room_process.py.
 */
export const MEDIA_HEADER_BYTES = 40;
const INLINE = -1;
const KIND_AUDIO = 1;
const KIND_VIDEO = 2;
/** Larger than any frame the SDK can hand over (a 4096x4096 I420 picture is 24 MiB). */
const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

interface FrameTimes {
  userId: string;
  /** Owned by the receiver: nothing else refers to it. Empty while the picture is still in the ring. */
  data: Buffer;
  /** Where the picture waits in the room process's video ring (read it with one pread), or null: `data` has it. */
  inRing: { offset: number; bytes: number } | null;
  /** When the room process got it, ms from entering: one clock for audio and video. */
  arrivalMs: number;
  /** The SDK's own timestamp. */
  ptsMs: number;
}

export type RoomMediaFrame =
  | (FrameTimes & { kind: 'audio'; sampleRate: number; channels: number })
  | (FrameTimes & { kind: 'video'; width: number; height: number; droppedBefore: number });

/**
 * Cuts a media pipe into frames, whatever the chunking; each payload in the pipe is copied once, into
 * its own Buffer. A picture in the video ring comes with `inRing` and no data.
 */
export class RoomMediaReader {
  private header = Buffer.alloc(MEDIA_HEADER_BYTES);
  private headerFilled = 0;
  private pending: { frame: RoomMediaFrame; userIdBytes: Buffer; userIdFilled: number; filled: number } | undefined;

  /** The frames completed by `chunk`. Throws on a stream that is not this protocol. */
  push(chunk: Buffer): RoomMediaFrame[] {
    const frames: RoomMediaFrame[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (!this.pending) {
        const taken = chunk.copy(this.header, this.headerFilled, offset, offset + MEDIA_HEADER_BYTES - this.headerFilled);
        this.headerFilled += taken;
        offset += taken;
        if (this.headerFilled < MEDIA_HEADER_BYTES) break;
        this.headerFilled = 0;
        this.pending = this.startFrame();
      }
      const pending = this.pending;
      if (pending.userIdFilled < pending.userIdBytes.length) {
        const taken = chunk.copy(pending.userIdBytes, pending.userIdFilled, offset, offset + pending.userIdBytes.length - pending.userIdFilled);
        pending.userIdFilled += taken;
        offset += taken;
        if (pending.userIdFilled < pending.userIdBytes.length) break;
        pending.frame.userId = pending.userIdBytes.toString('utf8');
      }
      const data = pending.frame.data;
      const taken = chunk.copy(data, pending.filled, offset, offset + data.length - pending.filled);
      pending.filled += taken;
      offset += taken;
      if (pending.filled === data.length) {
        frames.push(pending.frame);
        this.pending = undefined;
      }
    }
    return frames;
  }

  private startFrame(): NonNullable<RoomMediaReader['pending']> {
    const h = this.header;
    const payloadBytes = h.readUInt32LE(0);
    const kind = h.readUInt8(4);
    const userIdBytes = Buffer.alloc(h.readUInt8(5));
    if (payloadBytes > MAX_PAYLOAD_BYTES) throw new Error(`room process media: a ${payloadBytes}-byte frame is beyond any the SDK hands over`);
    const ringOffset = h.readDoubleLE(32);
    const inRing = ringOffset === INLINE ? null : { offset: ringOffset, bytes: payloadBytes };
    const common = { userId: '', data: Buffer.allocUnsafe(inRing ? 0 : payloadBytes), inRing, arrivalMs: h.readDoubleLE(16), ptsMs: h.readDoubleLE(24) };
    let frame: RoomMediaFrame;
    if (kind === KIND_AUDIO) frame = { ...common, kind: 'audio', channels: h.readUInt16LE(6), sampleRate: h.readUInt32LE(8) };
    else if (kind === KIND_VIDEO) frame = { ...common, kind: 'video', width: h.readUInt16LE(6), height: h.readUInt32LE(8), droppedBefore: h.readUInt32LE(12) };
    else throw new Error(`room process media: unknown frame kind ${kind}`);
    return { frame, userIdBytes, userIdFilled: 0, filled: 0 };
  }
}

/** Builds one media frame as the room process writes it; for tests. */
export function encodeMediaFrame(frame: RoomMediaFrame): Buffer {
  const header = Buffer.alloc(MEDIA_HEADER_BYTES);
  const userId = Buffer.from(frame.userId, 'utf8');
  header.writeUInt32LE(frame.inRing ? frame.inRing.bytes : frame.data.length, 0);
  header.writeUInt8(frame.kind === 'audio' ? KIND_AUDIO : KIND_VIDEO, 4);
  header.writeUInt8(userId.length, 5);
  header.writeUInt16LE(frame.kind === 'audio' ? frame.channels : frame.width, 6);
  header.writeUInt32LE(frame.kind === 'audio' ? frame.sampleRate : frame.height, 8);
  header.writeUInt32LE(frame.kind === 'video' ? frame.droppedBefore : 0, 12);
  header.writeDoubleLE(frame.arrivalMs, 16);
  header.writeDoubleLE(frame.ptsMs, 24);
  header.writeDoubleLE(frame.inRing ? frame.inRing.offset : INLINE, 32);
  return Buffer.concat(frame.inRing ? [header, userId] : [header, userId, frame.data]);
}

const userEvent = { userId: z.string() };

/** What the room process reports on its events pipe, one JSON object a line. */
export const roomEventSchema = z.discriminatedUnion('event', [
  /** `videoRing`: the path Node opens the room process's shared picture memory by, when it has one. */
  z.object({ event: z.literal('ready'), sdk: z.string(), version: z.string(), pid: z.number(), videoRing: z.string().nullable() }),
  z.object({ event: z.literal('unavailable'), message: z.string() }),
  z.object({ event: z.literal('entered'), afterMs: z.number() }),
  z.object({
    event: z.literal('enter-failed'),
    code: z.number().nullable(),
    name: z.string().optional(),
    message: z.string().optional(),
    afterMs: z.number(),
    /** What the SDK's own log said about entering, when it said it: e.g. -3307 "Request timeout". */
    sdkCode: z.number().optional(),
    sdkMessage: z.string().optional(),
  }),
  z.object({ event: z.literal('exited'), reason: z.enum(['dismissed', 'kicked', 'left']) }),
  z.object({ event: z.literal('anchor-joined'), ...userEvent }),
  z.object({ event: z.literal('anchor-left'), ...userEvent, reason: z.number() }),
  z.object({ event: z.literal('audio-available'), ...userEvent, available: z.boolean() }),
  z.object({ event: z.literal('video-available'), ...userEvent, available: z.boolean() }),
  z.object({ event: z.literal('error'), code: z.number(), message: z.string() }),
  z.object({ event: z.literal('connection'), state: z.string() }),
  z.object({ event: z.literal('clock'), ...userEvent, kind: z.enum(['audio', 'video']), ptsMs: z.number(), arrivalMs: z.number() }),
  z.object({ event: z.literal('audio-dropped'), ...userEvent, ms: z.number() }),
]);

export type RoomEvent = z.infer<typeof roomEventSchema>;

/** One events line; undefined for a line that is not a known event (logged by the caller). */
export function parseRoomEvent(line: string): RoomEvent | undefined {
  try {
    const parsed = roomEventSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
