import type { Duplex } from 'node:stream';
import { FfmpegProcess, type FfmpegExit } from '../ffmpeg/supervisor';
import { withTagData, type FlvTag } from '../media/flv';
import { accessUnitWithoutReorder, avcConfigWithoutReorder, nalLengthSize } from '../media/h264-sps';
import { imagerArgs, type ImagerPlan } from './args';

export interface ImagerOptions {
  ffmpegPath: string;
  plan: ImagerPlan;
  /** The stream's FLV header and its AVC sequence header tag, sent before anything else. */
  fileHeader: Buffer;
  sequenceHeader: FlvTag;
  /** Bytes we may have written that ffmpeg has not read yet; beyond it, new tags are shed. */
  maxBacklogBytes: number;
  env?: Record<string, string>;
}

/** How long an imager may take to finish after its input ended before it is stopped by signals. */
const FINISH_GRACE_MS = 10_000;
/** FLV AVC packet: frame type and codec, packet type, composition time (3 bytes). */
const AVC_PACKET_PREFIX_BYTES = 5;

/**
 * One imager ffmpeg (see imagerArgs), fed whole FLV tags by us. When it is fed keyframes only,
 * the SPS is rewritten to declare no reordering, so each picture comes out as soon as its
 * keyframe is in (a B-frame stream would otherwise hold back two keyframes: two intervals late).
 */
export class Imager {
  readonly exited: Promise<FfmpegExit>;
  private readonly ffmpeg: FfmpegProcess;
  private readonly input: Duplex;
  private ending: Promise<FfmpegExit> | undefined;
  private nalLengthSize = 4;

  constructor(private readonly options: ImagerOptions) {
    this.ffmpeg = new FfmpegProcess({ binary: options.ffmpegPath, args: imagerArgs(options.plan), extraPipes: 1, env: options.env });
    this.exited = this.ffmpeg.exited;
    this.input = this.ffmpeg.pipe(3);
    this.input.write(options.fileHeader);
    this.writeSequenceHeader(options.sequenceHeader);
  }

  get running(): boolean {
    return !this.ending && this.input.writable;
  }

  /** Passes a tag on; false (nothing written) when ffmpeg is too far behind or has ended. */
  write(tag: FlvTag): boolean {
    if (!this.running || this.input.writableLength > this.options.maxBacklogBytes) return false;
    this.input.write(this.options.plan.mode === 'keyframes' ? this.keyframeWithoutReorder(tag).bytes : tag.bytes);
    return true;
  }

  /** A new sequence header (the encoder changed its parameters mid-stream). */
  writeSequenceHeader(tag: FlvTag): void {
    if (!this.running) return;
    this.nalLengthSize = nalLengthSize(tag.data.subarray(AVC_PACKET_PREFIX_BYTES));
    this.input.write(this.options.plan.mode === 'keyframes' ? withoutReorder(tag).bytes : tag.bytes);
  }

  /** An SPS repeated inside the keyframe is rewritten as the sequence header's is. */
  private keyframeWithoutReorder(tag: FlvTag): FlvTag {
    const prefix = tag.data.subarray(0, AVC_PACKET_PREFIX_BYTES);
    const unit = tag.data.subarray(AVC_PACKET_PREFIX_BYTES);
    const rewritten = accessUnitWithoutReorder(unit, this.nalLengthSize);
    return rewritten === unit ? tag : withTagData(tag, Buffer.concat([prefix, rewritten]));
  }

  /** Ends the input: ffmpeg writes what its decoder still holds and exits on its own. */
  finish(): Promise<FfmpegExit> {
    if (this.ending) return this.ending;
    this.input.end();
    const backstop = setTimeout(() => void this.ffmpeg.stop('requested', { skipQuit: true }), FINISH_GRACE_MS);
    this.ending = this.exited.finally(() => clearTimeout(backstop));
    return this.ending;
  }
}

function withoutReorder(sequenceHeader: FlvTag): FlvTag {
  const prefix = sequenceHeader.data.subarray(0, AVC_PACKET_PREFIX_BYTES);
  const record = sequenceHeader.data.subarray(AVC_PACKET_PREFIX_BYTES);
  const rewritten = avcConfigWithoutReorder(record);
  return rewritten === record ? sequenceHeader : withTagData(sequenceHeader, Buffer.concat([prefix, rewritten]));
}
