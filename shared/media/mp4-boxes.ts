import { MediaFormatError } from '../errors';
import { ByteQueue } from './byte-queue';

/**
 * Cuts a fragmented MP4 byte stream (ffmpeg `-movflags +frag_keyframe+empty_moov`) into the pieces
 * a reader can use on their own: the initialisation segment (everything up to and including
 * `moov`), then one media segment per fragment (everything up to and including each `mdat`).
 * An object that is only ever extended by whole pieces plays at every moment.
 */

const BOX_HEADER_BYTES = 8;
const LARGE_BOX_HEADER_BYTES = 16;

export interface Mp4Segment {
  kind: 'init' | 'fragment';
  bytes: Buffer;
}

export class Mp4FormatError extends MediaFormatError {}

export class Mp4SegmentReader {
  private readonly pending = new ByteQueue();
  /** Whole boxes of the segment being assembled. */
  private segment: Buffer[] = [];
  private initDone = false;

  /** Bytes received that are not yet part of a whole segment. */
  get bufferedBytes(): number {
    return this.pending.length + this.segment.reduce((sum, box) => sum + box.length, 0);
  }

  push(chunk: Buffer): Mp4Segment[] {
    this.pending.push(chunk);
    const out: Mp4Segment[] = [];
    for (;;) {
      const box = this.nextBox();
      if (!box) return out;
      this.segment.push(box.bytes);
      const closes = this.initDone ? box.type === 'mdat' : box.type === 'moov';
      if (closes) {
        out.push({ kind: this.initDone ? 'fragment' : 'init', bytes: Buffer.concat(this.segment) });
        this.segment = [];
        this.initDone = true;
      }
    }
  }

  private nextBox(): { type: string; bytes: Buffer } | undefined {
    if (this.pending.length < BOX_HEADER_BYTES) return undefined;
    const head = this.pending.peek(Math.min(LARGE_BOX_HEADER_BYTES, this.pending.length));
    let size = head.readUInt32BE(0);
    const type = head.toString('latin1', 4, 8);
    if (size === 1) {
      if (head.length < LARGE_BOX_HEADER_BYTES) return undefined;
      size = Number(head.readBigUInt64BE(8));
    } else if (size < BOX_HEADER_BYTES) {
      // 0 means "to the end of the file", which a stream we cut while it grows cannot use.
      throw new Mp4FormatError(`MP4 box '${type}' has size ${size}; expected a fragmented MP4 with sized boxes`);
    }
    if (this.pending.length < size) return undefined;
    return { type, bytes: this.pending.take(size) };
  }
}
