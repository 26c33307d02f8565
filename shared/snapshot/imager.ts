import type { Duplex } from 'node:stream';
import { FfmpegProcess, type FfmpegExit } from '../ffmpeg/supervisor';
import { FLV_VIDEO_FILE_HEADER, retimedVideoTag, withTagData, type FlvTag } from '../media/flv';
import { accessUnitWithoutReorder, avcConfigWithoutReorder, nalLengthSize } from '../media/h264-sps';
import { imagerArgs, imagerTime, type ImagerPlan } from './args';

export interface ImagerOptions {
  ffmpegPath: string;
  plan: ImagerPlan;
  /** Timeline ms that imager time 0 stands for: a little before the first picture fed. */
  baseMs: number;
  /** The stream's AVC sequence header tag, sent before anything else. */
  sequenceHeader: FlvTag;
  /** Bytes we may have written that ffmpeg has not read yet; beyond it, new pictures are shed. */
  maxBacklogBytes: number;
  env?: Record<string, string>;
}

/** How long an imager may take to finish after its input ended before it is stopped by signals. */
const FINISH_GRACE_MS = 10_000;
/** FLV AVC packet: frame type and codec, packet type, composition time (3 bytes). */
const AVC_PACKET_PREFIX_BYTES = 5;

/**
 * One imager ffmpeg (see imagerArgs) per stream format, fed whole FLV tags by us: the pictures the
 * feed planner chose, and the reference pictures they need, never a picture nothing refers to. So
 * the SPS can honestly declare no reordering, and each chosen picture comes out as soon as it is
 * in (a B-frame stream would otherwise hold pictures back: with keyframes alone, whole intervals).
 */
export class Imager {
  readonly exited: Promise<FfmpegExit>;
  readonly baseMs: number;
  private readonly ffmpeg: FfmpegProcess;
  private readonly input: Duplex;
  private ending: Promise<FfmpegExit> | undefined;
  private readonly nalLengthSize: number;

  constructor(private readonly options: ImagerOptions) {
    this.baseMs = options.baseMs;
    this.ffmpeg = new FfmpegProcess({ binary: options.ffmpegPath, args: imagerArgs(options.plan), extraPipes: 1, env: options.env });
    this.exited = this.ffmpeg.exited;
    this.input = this.ffmpeg.pipe(3);
    const record = options.sequenceHeader.data.subarray(AVC_PACKET_PREFIX_BYTES);
    this.nalLengthSize = nalLengthSize(record);
    this.input.write(FLV_VIDEO_FILE_HEADER);
    const header = withTagData(options.sequenceHeader, Buffer.concat([options.sequenceHeader.data.subarray(0, AVC_PACKET_PREFIX_BYTES), avcConfigWithoutReorder(record)]));
    this.input.write(retimedVideoTag(header, 0, 0).bytes);
  }

  get run(): number {
    return this.options.plan.run;
  }

  get running(): boolean {
    return !this.ending && this.input.writable;
  }

  /** Whether a picture written now would wait behind too much: the caller sheds instead. */
  get congested(): boolean {
    return this.input.writableLength > this.options.maxBacklogBytes;
  }

  /**
   * Passes a picture on, at its timeline times; `chosen` pictures become images. False (nothing
   * written) when ffmpeg is too far behind or has ended.
   */
  write(tag: FlvTag, times: { dtsMs: number; ptsMs: number }, chosen: boolean): boolean {
    if (!this.running || this.congested) return false;
    const unit = tag.data.subarray(AVC_PACKET_PREFIX_BYTES);
    const rewritten = accessUnitWithoutReorder(unit, this.nalLengthSize);
    const data = rewritten === unit ? tag : withTagData(tag, Buffer.concat([tag.data.subarray(0, AVC_PACKET_PREFIX_BYTES), rewritten]));
    const pts = imagerTime(times.ptsMs, this.baseMs, chosen);
    // Decode times keep their order and stay at or below the presentation time.
    const dts = Math.min(pts, imagerTime(times.dtsMs, this.baseMs, chosen));
    this.input.write(retimedVideoTag(data, dts, pts).bytes);
    return true;
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
