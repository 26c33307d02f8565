import type { Logger } from '../../log';
import { FLV_TAG_AUDIO, FLV_TAG_VIDEO, flvFileHeader, retimedTagParts, type FlvTag } from '../../media/flv';
import { FragmentedMp4Writer } from '../../media/fmp4-writer';
import { firstSpsOf } from '../../media/h264-sps';
import { finishUpload, type GrowingObjectResult, type GrowingObjectUpload } from '../../upload/growing-object';

/**
 * Records a live FLV stream as received, without decoding, encoding or another process: `flv`
 * writes the tags themselves; `mp4` writes fragmented MP4 (a fragment per GOP) from the same
 * samples. Neither copies the media: what goes to the upload is new headers plus the received
 * buffers. The object grows in storage while recording (GrowingObjectUpload), so a crash loses
 * seconds. A new object starts when the stream's parameters change (a republish at another
 * size, another audio config) or when a piece reaches its longest duration.
 */

export const STREAM_RECORD_FORMATS = ['mp4', 'flv'] as const;
export type StreamRecordFormat = (typeof STREAM_RECORD_FORMATS)[number];

export const streamRecordContentType = (format: StreamRecordFormat) => (format === 'mp4' ? 'video/mp4' : 'video/x-flv');

const FLV_AUDIO_AAC = 10;

export interface StreamRecorderOptions {
  format: StreamRecordFormat;
  logger: Logger;
  /** A piece ends at the first keyframe this long after its start. */
  maxPieceMs?: number;
  /** The upload for a new piece; `startedAt` is the wall time (ms) of its first picture. */
  openPiece: (index: number, startedAt: number) => GrowingObjectUpload;
}

export interface StreamPiece {
  index: number;
  startedAt: number;
  durationSec: number;
  upload: GrowingObjectResult;
  /** Whether audio is in it (the source sent audio the container holds when the piece began). */
  audio: boolean;
  /** Why the recording ended with this piece, when it could not go on. */
  error?: string;
}

/** One piece's container: what to write for each sample, times relative to the piece (ms). */
interface ContainerWriter {
  /** Takes an audio track the piece began without, while nothing is written yet; false when too late. */
  addAudio?(header: FlvTag): boolean;
  video(tag: FlvTag, keyframe: boolean, dtsMs: number, ptsMs: number): Buffer[];
  audio(tag: FlvTag, timeMs: number): Buffer[];
  end(): Buffer[];
}

interface OpenPiece {
  index: number;
  startedAt: number;
  /** Timeline ms of the first picture: the piece's time 0. */
  originMs: number;
  lastVideoMs: number;
  audio: boolean;
  writer: ContainerWriter;
  upload: GrowingObjectUpload;
  /** Behind (the upload is full): pictures are shed until a keyframe finds room. */
  shedding: boolean;
  uploadFull: boolean;
}

export class StreamRecorder {
  private videoHeader: FlvTag | undefined;
  private audioHeader: FlvTag | undefined;
  private audioCodec: number | undefined;
  private piece: OpenPiece | undefined;
  private readonly closing: Array<Promise<StreamPiece>> = [];
  private nextIndex = 0;
  private stopped = false;
  /** Why the recording stopped early, if it did. */
  private failure: string | undefined;
  /** Audio tags a piece could not hold (it began without audio, or MP4 cannot hold the codec as it is). */
  audioTagsSkipped = 0;
  /** Pictures not recorded because storage could not keep up (load shed). */
  picturesShed = 0;

  constructor(private readonly options: StreamRecorderOptions) {}

  /** A sequence header: the same one again is nothing new; another one starts a new piece. */
  videoSequenceHeader(tag: FlvTag): void {
    this.guarded(() => this.onVideoSequenceHeader(tag));
  }

  /** A video picture at timeline time `dtsMs` / `ptsMs`. A piece starts (or rolls over) at a keyframe. */
  video(tag: FlvTag, keyframe: boolean, dtsMs: number, ptsMs: number, wallMs: number): void {
    this.guarded(() => this.onVideo(tag, keyframe, dtsMs, ptsMs, wallMs));
  }

  /** An audio tag at timeline time `timeMs` (undefined: the stream's clock is not known yet). */
  audio(tag: FlvTag, timeMs: number | undefined): void {
    this.guarded(() => this.onAudio(tag, timeMs));
  }

  /** Ends the current piece; resolves with every piece this recorder made. */
  async stop(): Promise<StreamPiece[]> {
    this.stopped = true;
    this.closePiece();
    if (this.audioTagsSkipped > 0) this.options.logger.info('audio the recording could not hold was left out', { audioTags: this.audioTagsSkipped, codec: this.audioCodec });
    return Promise.all(this.closing);
  }

  /**
   * A recording that cannot go on (a header it cannot use, say) ends here, with what it stored:
   * it never takes the stream, and so the snapshots, down with it.
   */
  private guarded(step: () => void): void {
    if (this.stopped) return;
    try {
      step();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.options.logger.error('the recording stopped: the stream cannot be recorded as it is', { error: message });
      this.failure = message;
      this.stopped = true;
      try {
        this.closePiece();
      } catch {
        // What it stored stays stored: the piece is finished (and reported) all the same.
      }
    }
  }

  private onVideoSequenceHeader(tag: FlvTag): void {
    if (this.videoHeader?.data.equals(tag.data)) return;
    this.videoHeader = tag;
    this.closePiece();
  }

  private onVideo(tag: FlvTag, keyframe: boolean, dtsMs: number, ptsMs: number, wallMs: number): void {
    if (!this.videoHeader) return;
    let piece = this.piece;
    if (piece && keyframe && this.options.maxPieceMs !== undefined && dtsMs - piece.originMs >= this.options.maxPieceMs) {
      this.closePiece();
      piece = undefined;
    }
    if (!piece) {
      if (!keyframe) return;
      piece = this.openPiece(dtsMs, wallMs);
    }
    // A gap inside a GOP would corrupt every picture after it: shed from here to a keyframe.
    if (piece.uploadFull || (piece.shedding && !keyframe)) {
      if (!piece.shedding) this.options.logger.warn('recording behind storage; shedding pictures until the next keyframe', { piece: piece.index });
      piece.shedding = true;
      this.picturesShed++;
      return;
    }
    piece.shedding = false;
    piece.lastVideoMs = Math.max(piece.lastVideoMs, dtsMs);
    this.send(piece, piece.writer.video(tag, keyframe, dtsMs - piece.originMs, ptsMs - piece.originMs));
  }

  private onAudio(tag: FlvTag, timeMs: number | undefined): void {
    if (tag.data.length < 2) return;
    const codec = tag.data[0]! >> 4;
    this.audioCodec = codec;
    if (codec === FLV_AUDIO_AAC && tag.data[1] === 0) {
      // ffmpeg's FLV muxer sends an empty one first when its input is ADTS (HLS): not a config yet.
      if (tag.data.length < 4) return;
      const changed = this.audioHeader !== undefined && !this.audioHeader.data.equals(tag.data);
      this.audioHeader = tag;
      // A piece that has written nothing yet takes the audio it began without; a new config
      // only matters to a piece that carries audio.
      if (this.piece && !this.piece.audio && this.piece.writer.addAudio?.(tag)) this.piece.audio = true;
      else if (changed && this.piece?.audio) this.closePiece();
      return;
    }
    const piece = this.piece;
    if (!piece || timeMs === undefined || timeMs < piece.originMs || piece.shedding) return;
    if (!piece.audio) {
      this.audioTagsSkipped++;
      return;
    }
    this.send(piece, piece.writer.audio(tag, timeMs - piece.originMs));
  }

  /** Whether a piece starting now can carry the audio: MP4 takes AAC as it is, FLV anything. */
  private canCarryAudio(): boolean {
    if (this.audioCodec === undefined) return false;
    if (this.options.format === 'flv') return this.audioCodec !== FLV_AUDIO_AAC || this.audioHeader !== undefined;
    return this.audioCodec === FLV_AUDIO_AAC && this.audioHeader !== undefined;
  }

  private openPiece(originMs: number, startedAt: number): OpenPiece {
    const index = this.nextIndex++;
    const audio = this.canCarryAudio();
    const audioHeader = audio ? this.audioHeader : undefined;
    const writer = this.options.format === 'mp4' ? new Mp4Container(this.videoHeader!, audioHeader) : new FlvContainer(this.videoHeader!, audio, audioHeader);
    const piece: OpenPiece = { index, startedAt, originMs, lastVideoMs: originMs, audio, writer, upload: this.options.openPiece(index, startedAt), shedding: false, uploadFull: false };
    this.piece = piece;
    this.options.logger.info('recording piece started', { piece: index, format: this.options.format, audio });
    return piece;
  }

  /** One sample's bytes, in one go, so an append never holds part of it (the upload batches). */
  private send(piece: OpenPiece, parts: Buffer[]): void {
    let room = true;
    for (const part of parts) room = piece.upload.write(part);
    if (!room && !piece.uploadFull) {
      piece.uploadFull = true;
      void piece.upload.room().then(() => (piece.uploadFull = false));
    }
  }

  private closePiece(): void {
    const piece = this.piece;
    if (!piece) return;
    this.piece = undefined;
    try {
      for (const part of piece.writer.end()) piece.upload.write(part);
    } finally {
      this.closing.push(this.finish(piece, this.failure));
    }
  }

  private async finish(piece: OpenPiece, failure: string | undefined): Promise<StreamPiece> {
    const upload = await finishUpload(piece.upload);
    const durationSec = (piece.lastVideoMs - piece.originMs) / 1000;
    this.options.logger.info('recording piece closed', { piece: piece.index, durationSec, bytes: upload.storedBytes });
    return { index: piece.index, startedAt: piece.startedAt, durationSec, upload, audio: piece.audio, ...(failure ? { error: failure } : {}) };
  }
}

/** FLV: the file header and sequence headers, then each tag with a new timestamp and its own bytes. */
class FlvContainer implements ContainerWriter {
  private preamble: Buffer[] | undefined;

  constructor(videoHeader: FlvTag, audio: boolean, audioHeader: FlvTag | undefined) {
    this.preamble = [flvFileHeader({ video: true, audio }), ...retimedTagParts(videoHeader, 0), ...(audioHeader ? retimedTagParts(audioHeader, 0) : [])];
  }

  video(tag: FlvTag, _keyframe: boolean, dtsMs: number): Buffer[] {
    return this.withPreamble(retimedTagParts(tag, dtsMs));
  }

  audio(tag: FlvTag, timeMs: number): Buffer[] {
    return this.withPreamble(retimedTagParts(tag, timeMs));
  }

  end(): Buffer[] {
    return [];
  }

  private withPreamble(parts: Buffer[]): Buffer[] {
    if (!this.preamble) return parts;
    const preamble = this.preamble;
    this.preamble = undefined;
    return [...preamble, ...parts];
  }
}

/** MP4: the init segment with the first fragment, then a fragment at each keyframe. */
class Mp4Container implements ContainerWriter {
  private mp4: FragmentedMp4Writer;
  private init: Buffer | undefined;

  constructor(
    private readonly videoHeader: FlvTag,
    audioHeader: FlvTag | undefined,
  ) {
    this.mp4 = Mp4Container.writer(videoHeader, audioHeader);
    this.init = this.mp4.init();
  }

  private static writer(videoHeader: FlvTag, audioHeader: FlvTag | undefined): FragmentedMp4Writer {
    if (videoHeader.type !== FLV_TAG_VIDEO) throw new Error('not a video sequence header');
    const avcC = videoHeader.data.subarray(5);
    const sps = firstSpsOf(avcC);
    return new FragmentedMp4Writer({ avcC, width: sps?.width ?? 0, height: sps?.height ?? 0 }, audioHeader && audioHeader.type === FLV_TAG_AUDIO ? { audioSpecificConfig: audioHeader.data.subarray(2) } : undefined);
  }

  addAudio(header: FlvTag): boolean {
    // Only before the first fragment: the init segment (with its tracks) goes out with it.
    if (!this.init) return false;
    const withAudio = Mp4Container.writer(this.videoHeader, header);
    for (const sample of this.mp4.takeVideo()) withAudio.addVideo(sample);
    this.mp4 = withAudio;
    this.init = withAudio.init();
    return true;
  }

  video(tag: FlvTag, keyframe: boolean, dtsMs: number, ptsMs: number): Buffer[] {
    // A keyframe closes the GOP before it: that fragment goes out whole.
    const out = keyframe && this.mp4.pendingVideoSamples > 0 ? this.fragment(dtsMs) : [];
    this.mp4.addVideo({ dtsMs, ctsMs: ptsMs - dtsMs, keyframe, data: tag.data.subarray(5) });
    return out;
  }

  audio(tag: FlvTag, timeMs: number): Buffer[] {
    // AAC raw frames only (packet type 1); headers are in the init segment.
    if (tag.data[1] === 1) this.mp4.addAudio({ dtsMs: timeMs, data: tag.data.subarray(2) });
    return [];
  }

  end(): Buffer[] {
    return this.fragment(undefined);
  }

  private fragment(nextVideoDtsMs: number | undefined): Buffer[] {
    const parts = this.mp4.fragment(nextVideoDtsMs);
    if (parts.length === 0 || !this.init) return parts;
    // The init segment alone is no recording: it goes out with the first fragment.
    const init = this.init;
    this.init = undefined;
    return [init, ...parts];
  }
}
