import { supervisedRunArgs } from '../../ffmpeg/args';
import { describeExit, FfmpegProcess } from '../../ffmpeg/supervisor';
import type { Logger } from '../../log';
import { FLV_TAG_AUDIO, flvFileHeader, flvTag, retimedVideoTag, type FlvTag } from '../../media/flv';
import { finishUpload, type GrowingObjectResult, type GrowingObjectUpload } from '../../upload/growing-object';
import { pumpSegments } from './segment-pump';

/**
 * Records a live FLV stream as received, without decoding or encoding: `flv` writes the tags
 * themselves; `mp4` remuxes them into fragmented MP4 with one ffmpeg (stream copy, a fragment per
 * keyframe). Either way the object grows in storage while recording (GrowingObjectUpload), so a
 * crash loses seconds. A new object starts when the stream's parameters change (a republish at
 * another size, another audio config) or when a piece reaches its longest duration.
 */

export const STREAM_RECORD_FORMATS = ['mp4', 'flv'] as const;
export type StreamRecordFormat = (typeof STREAM_RECORD_FORMATS)[number];

export const streamRecordContentType = (format: StreamRecordFormat) => (format === 'mp4' ? 'video/mp4' : 'video/x-flv');

/** FLV audio codecs MP4 can hold as they are: AAC (10) and MP3 (2). */
const MP4_AUDIO_CODECS = new Set([10, 2]);
const FLV_AUDIO_AAC = 10;
/** What the remuxer may have unread before pictures are shed (until the next keyframe). */
const REMUX_BACKLOG_BYTES = 8 * 1024 * 1024;
/** A remuxer asked to finish gets this long before it is stopped. */
const REMUX_FINISH_GRACE_MS = 5_000;

/** ffmpeg: FLV tags on fd 3 in, fragmented MP4 on fd 4 out; every stream copied as it is. */
export function streamCopyArgs(): string[] {
  return [
    ...supervisedRunArgs(),
    // The tags come from us: whole, in order, with the stream's headers first; no long probe.
    '-probesize', '32768', '-analyzeduration', '0',
    '-f', 'flv', '-i', 'pipe:3',
    '-map', '0', '-c', 'copy',
    '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', 'pipe:4',
  ];
}

export interface StreamRecorderOptions {
  format: StreamRecordFormat;
  ffmpegPath: string;
  env?: Record<string, string>;
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
  /** Whether audio is in it (the source sent audio MP4 can hold when the piece began). */
  audio: boolean;
  error?: string;
}

interface OpenPiece {
  index: number;
  startedAt: number;
  /** Timeline ms of the first picture: the piece's time 0. */
  originMs: number;
  lastVideoMs: number;
  audio: boolean;
  upload: GrowingObjectUpload;
  remux?: FfmpegProcess;
  /** Behind (the remuxer or the upload is full): pictures are shed until a keyframe finds room. */
  shedding: boolean;
  uploadFull: boolean;
  /** Bytes to the remuxer or the upload are written in order through this chain. */
  done: Promise<void>;
  error?: string;
}

export class StreamRecorder {
  private videoHeader: FlvTag | undefined;
  private audioHeader: FlvTag | undefined;
  private audioCodec: number | undefined;
  private piece: OpenPiece | undefined;
  private readonly closing: Array<Promise<StreamPiece>> = [];
  private nextIndex = 0;
  private stopped = false;
  /** Audio tags a piece could not hold (it began without audio, or the codec does not fit MP4). */
  audioTagsSkipped = 0;
  /** Pictures not recorded because the remuxer or storage could not keep up (load shed). */
  picturesShed = 0;

  constructor(private readonly options: StreamRecorderOptions) {}

  /** A sequence header: the same one again is nothing new; another one starts a new piece. */
  videoSequenceHeader(tag: FlvTag): void {
    if (this.videoHeader?.data.equals(tag.data)) return;
    this.videoHeader = tag;
    this.closePiece();
  }

  /** A video picture at timeline time `dtsMs` / `ptsMs`. A piece starts (or rolls over) at a keyframe. */
  video(tag: FlvTag, keyframe: boolean, dtsMs: number, ptsMs: number, wallMs: number): void {
    if (this.stopped || !this.videoHeader) return;
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
    if (piece.shedding && (!keyframe || this.behind(piece))) {
      this.picturesShed++;
      return;
    }
    piece.shedding = this.behind(piece);
    if (piece.shedding) {
      this.picturesShed++;
      this.options.logger.warn('recording behind; shedding pictures until the next keyframe', { piece: piece.index });
      return;
    }
    piece.lastVideoMs = Math.max(piece.lastVideoMs, dtsMs);
    this.send(piece, retimedVideoTag(tag, dtsMs - piece.originMs, ptsMs - piece.originMs));
  }

  /** An audio tag at timeline time `timeMs` (undefined: the stream's clock is not known yet). */
  audio(tag: FlvTag, timeMs: number | undefined): void {
    if (this.stopped || tag.data.length < 2) return;
    const codec = tag.data[0]! >> 4;
    if (codec === FLV_AUDIO_AAC && tag.data[1] === 0) {
      // A new audio config only matters to a piece that carries audio.
      const changed = this.audioHeader !== undefined && !this.audioHeader.data.equals(tag.data);
      this.audioHeader = tag;
      this.audioCodec = codec;
      if (changed && this.piece?.audio) this.closePiece();
      return;
    }
    this.audioCodec ??= codec;
    const piece = this.piece;
    if (!piece || timeMs === undefined || timeMs < piece.originMs) return;
    if (!piece.audio || piece.shedding) {
      this.audioTagsSkipped += piece.audio ? 0 : 1;
      return;
    }
    this.send(piece, flvTag(FLV_TAG_AUDIO, timeMs - piece.originMs, tag.data));
  }

  /** Ends the current piece; resolves with every piece this recorder made. */
  async stop(): Promise<StreamPiece[]> {
    this.stopped = true;
    this.closePiece();
    return Promise.all(this.closing);
  }

  private canCarryAudio(): boolean {
    if (this.audioCodec === undefined) return false;
    if (this.options.format === 'flv') return true;
    return MP4_AUDIO_CODECS.has(this.audioCodec) && (this.audioCodec !== FLV_AUDIO_AAC || this.audioHeader !== undefined);
  }

  private openPiece(originMs: number, startedAt: number): OpenPiece {
    const index = this.nextIndex++;
    const audio = this.canCarryAudio();
    const upload = this.options.openPiece(index, startedAt);
    const piece: OpenPiece = { index, startedAt, originMs, lastVideoMs: originMs, audio, upload, shedding: false, uploadFull: false, done: Promise.resolve() };
    const header = flvFileHeader({ video: true, audio });
    if (this.options.format === 'mp4') {
      const remux = new FfmpegProcess({ binary: this.options.ffmpegPath, args: streamCopyArgs(), extraPipes: 2, env: this.options.env });
      piece.remux = remux;
      remux.pipe(3).on('error', () => {}); // an early exit is reported from its exit status
      const output = pumpSegments(remux.pipe(4) as AsyncIterable<Buffer>, 'mp4', upload).catch((error: unknown) => {
        piece.error ??= `reading the remuxer's output failed: ${error instanceof Error ? error.message : String(error)}`;
      });
      piece.done = Promise.all([output, remux.exited]).then(([, exit]) => {
        if (exit.code !== 0 && !piece.error) piece.error = describeExit(exit);
      });
    }
    this.piece = piece;
    this.options.logger.info('recording piece started', { piece: index, format: this.options.format, audio });
    this.send(piece, header);
    this.send(piece, retimedVideoTag(this.videoHeader!, 0, 0));
    if (audio && this.audioHeader) this.send(piece, flvTag(FLV_TAG_AUDIO, 0, this.audioHeader.data));
    return piece;
  }

  /** FLV bytes to the piece: to the remuxer's input, or (flv) straight to the upload. */
  private send(piece: OpenPiece, tag: FlvTag | Buffer): void {
    const bytes = Buffer.isBuffer(tag) ? tag : tag.bytes;
    // Backpressure is the remuxer's or the upload's: both buffer within their own bounds and
    // the upload spills to disk; a live source cannot be paused, so nothing waits here.
    if (piece.remux) {
      piece.remux.pipe(3).write(bytes);
    } else if (!piece.upload.write(bytes) && !piece.uploadFull) {
      piece.uploadFull = true;
      void piece.upload.room().then(() => (piece.uploadFull = false));
    }
  }

  private behind(piece: OpenPiece): boolean {
    return piece.remux ? piece.remux.pipe(3).writableLength > REMUX_BACKLOG_BYTES : piece.uploadFull;
  }

  private closePiece(): void {
    const piece = this.piece;
    if (!piece) return;
    this.piece = undefined;
    this.closing.push(this.finish(piece));
  }

  private async finish(piece: OpenPiece): Promise<StreamPiece> {
    if (piece.remux) {
      const remux = piece.remux;
      remux.pipe(3).end();
      const backstop = setTimeout(() => void remux.stop('requested'), REMUX_FINISH_GRACE_MS);
      await piece.done;
      clearTimeout(backstop);
    }
    const upload = await finishUpload(piece.upload);
    const durationSec = (piece.lastVideoMs - piece.originMs) / 1000;
    this.options.logger.info('recording piece closed', { piece: piece.index, durationSec, bytes: upload.storedBytes });
    return { index: piece.index, startedAt: piece.startedAt, durationSec, upload, audio: piece.audio, ...(piece.error ? { error: piece.error } : {}) };
  }
}
