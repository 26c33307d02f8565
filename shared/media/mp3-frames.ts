import { MediaFormatError } from '../errors';
/**
 * Cuts an MP3 byte stream into whole MPEG audio Layer III frames, so an object extended by what
 * this returns always ends on a frame boundary. Expects frames only (ffmpeg `-f mp3 -write_xing 0
 * -id3v2_version 0`): a header that is not a frame header is a format error.
 */

const BITRATES_KBPS = {
  mpeg1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  mpeg2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
const SAMPLE_RATES = { mpeg1: [44100, 48000, 32000], mpeg2: [22050, 24000, 16000], mpeg25: [11025, 12000, 8000] };

export interface Mp3FrameHeader {
  bytes: number;
  sampleRate: number;
  /** Samples per channel in the frame: 1152 (MPEG-1) or 576 (MPEG-2/2.5). */
  samples: number;
}

export class Mp3FormatError extends MediaFormatError {}

/** The frame starting at `header` (4 bytes), or undefined when they are not a Layer III frame header. */
export function parseMp3FrameHeader(header: Buffer): Mp3FrameHeader | undefined {
  if (header.length < 4 || header[0] !== 0xff || (header[1]! & 0xe0) !== 0xe0) return undefined;
  const versionBits = (header[1]! >> 3) & 3; // 0: 2.5, 2: 2, 3: 1
  const layerBits = (header[1]! >> 1) & 3; // 1: Layer III
  const bitrateIndex = header[2]! >> 4;
  const rateIndex = (header[2]! >> 2) & 3;
  if (versionBits === 1 || layerBits !== 1 || bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3) return undefined;
  const mpeg1 = versionBits === 3;
  const sampleRate = (mpeg1 ? SAMPLE_RATES.mpeg1 : versionBits === 2 ? SAMPLE_RATES.mpeg2 : SAMPLE_RATES.mpeg25)[rateIndex]!;
  const bitrate = (mpeg1 ? BITRATES_KBPS.mpeg1 : BITRATES_KBPS.mpeg2)[bitrateIndex]! * 1000;
  const padding = (header[2]! >> 1) & 1;
  const samples = mpeg1 ? 1152 : 576;
  return { bytes: Math.floor((samples / 8) * bitrate / sampleRate) + padding, sampleRate, samples };
}

export class Mp3FrameReader {
  private pending = Buffer.alloc(0);

  /** Whole frames (concatenated) and how many samples per channel they hold. */
  push(chunk: Buffer): { bytes: Buffer; samples: number } {
    const data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let offset = 0;
    let samples = 0;
    while (data.length - offset >= 4) {
      const frame = parseMp3FrameHeader(data.subarray(offset, offset + 4));
      if (!frame) throw new Mp3FormatError(`no MP3 frame header at byte ${offset} of a chunk`);
      if (data.length - offset < frame.bytes) break;
      offset += frame.bytes;
      samples += frame.samples;
    }
    this.pending = Buffer.from(data.subarray(offset));
    return { bytes: data.subarray(0, offset), samples };
  }

  get bufferedBytes(): number {
    return this.pending.length;
  }
}
