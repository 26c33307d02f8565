/**
 * A streaming Matroska writer for one raw I420 video track, so the encoder gets every picture with
 * its own timestamp. A picture not sent (the encoder is behind, or the anchor's camera is late)
 * simply lasts longer in the recording: frames can be shed without shrinking the timeline and
 * without encoding repeats. ffmpeg reads it as `V_UNCOMPRESSED` with ColourSpace `I420`.
 */

const UNKNOWN_SIZE = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** SimpleBlock timecodes are 16-bit, relative to their cluster: start a new cluster well before. */
const CLUSTER_SPAN_MS = 10_000;

/** EBML variable-size integer for an element's data size. */
function vintSize(size: number): Buffer {
  for (let length = 1; length <= 8; length++) {
    if (size < 2 ** (7 * length) - 1) {
      const out = Buffer.alloc(length);
      let value = size;
      for (let i = length - 1; i >= 0; i--) {
        out[i] = value % 256;
        value = Math.floor(value / 256);
      }
      out[0]! |= 1 << (8 - length);
      return out;
    }
  }
  throw new RangeError(`EBML size ${size} too large`);
}

function idBytes(id: number): Buffer {
  const hex = id.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}

function element(id: number, data: Buffer): Buffer {
  return Buffer.concat([idBytes(id), vintSize(data.length), data]);
}

function uint(id: number, value: number): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return element(id, Buffer.from(hex, 'hex'));
}

const text = (id: number, value: string) => element(id, Buffer.from(value, 'latin1'));

const ID = {
  EBML: 0x1a45dfa3,
  EBMLVersion: 0x4286,
  EBMLReadVersion: 0x42f7,
  EBMLMaxIDLength: 0x42f2,
  EBMLMaxSizeLength: 0x42f3,
  DocType: 0x4282,
  DocTypeVersion: 0x4287,
  DocTypeReadVersion: 0x4285,
  Segment: 0x18538067,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  MuxingApp: 0x4d80,
  WritingApp: 0x5741,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackUID: 0x73c5,
  TrackType: 0x83,
  CodecID: 0x86,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  ColourSpace: 0x2eb524,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
} as const;

export class RawVideoMatroskaWriter {
  private clusterStartMs: number | undefined;
  private lastMs = -1;

  constructor(
    private readonly width: number,
    private readonly height: number,
  ) {}

  /** The file's start: EBML header, the (unknown-size) segment, its info and the one track. */
  header(): Buffer {
    const ebml = element(
      ID.EBML,
      Buffer.concat([
        uint(ID.EBMLVersion, 1),
        uint(ID.EBMLReadVersion, 1),
        uint(ID.EBMLMaxIDLength, 4),
        uint(ID.EBMLMaxSizeLength, 8),
        text(ID.DocType, 'matroska'),
        uint(ID.DocTypeVersion, 4),
        uint(ID.DocTypeReadVersion, 2),
      ]),
    );
    const info = element(ID.Info, Buffer.concat([uint(ID.TimecodeScale, 1_000_000), text(ID.MuxingApp, 'serverless-media'), text(ID.WritingApp, 'serverless-media')]));
    const video = element(ID.Video, Buffer.concat([uint(ID.PixelWidth, this.width), uint(ID.PixelHeight, this.height), element(ID.ColourSpace, Buffer.from('I420', 'latin1'))]));
    const track = element(
      ID.TrackEntry,
      Buffer.concat([uint(ID.TrackNumber, 1), uint(ID.TrackUID, 1), uint(ID.TrackType, 1), text(ID.CodecID, 'V_UNCOMPRESSED'), video]),
    );
    return Buffer.concat([ebml, idBytes(ID.Segment), UNKNOWN_SIZE, info, element(ID.Tracks, track)]);
  }

  /**
   * What to write for one picture shown from `timestampMs` on: a small header (and a new cluster
   * when due), then the picture itself, passed through by reference.
   */
  frame(timestampMs: number, picture: Buffer): Buffer[] {
    const ms = Math.round(timestampMs);
    if (ms <= this.lastMs) throw new RangeError(`frame at ${ms} ms is not after the previous one (${this.lastMs} ms)`);
    this.lastMs = ms;
    const parts: Buffer[] = [];
    if (this.clusterStartMs === undefined || ms - this.clusterStartMs >= CLUSTER_SPAN_MS) {
      this.clusterStartMs = ms;
      parts.push(idBytes(ID.Cluster), UNKNOWN_SIZE, uint(ID.Timecode, ms));
    }
    // Track 1, timecode relative to the cluster, keyframe flag: every raw picture stands alone.
    const block = Buffer.alloc(4);
    block[0] = 0x81;
    block.writeInt16BE(ms - this.clusterStartMs, 1);
    block[3] = 0x80;
    parts.push(idBytes(ID.SimpleBlock), vintSize(block.length + picture.length), block, picture);
    return parts;
  }
}
