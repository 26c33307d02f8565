import { MediaFormatError } from '../errors';

/**
 * Fragmented MP4 (ISO BMFF, `empty_moov` + `default-base-is-moof`, a fragment per GOP) from what
 * an FLV stream carries as it is: H.264 in AVCC form with its AVCDecoderConfigurationRecord, AAC
 * raw frames with their AudioSpecificConfig. The samples are not copied here: a fragment is its
 * header (moof + mdat header) followed by the samples' own buffers, so muxing costs a few boxes
 * per GOP. A file made of the init segment and whole fragments plays at every moment.
 */

export interface AvcTrack {
  /** The AVCDecoderConfigurationRecord (an FLV AVC sequence header's data after its 5 bytes). */
  avcC: Buffer;
  width: number;
  height: number;
}

export interface AacTrack {
  /** The AudioSpecificConfig (an FLV AAC sequence header's data after its 2 bytes). */
  audioSpecificConfig: Buffer;
}

export interface VideoSample {
  dtsMs: number;
  /** Presentation minus decode time (ms). */
  ctsMs: number;
  keyframe: boolean;
  data: Buffer;
}

export interface AudioSample {
  dtsMs: number;
  data: Buffer;
}

const VIDEO_TRACK_ID = 1;
const AUDIO_TRACK_ID = 2;
const VIDEO_TIMESCALE = 90_000;
const AAC_FRAME_SAMPLES = 1024;
/** Audio whose timestamp strays further than this from the running sample count is resynced to it. */
const AUDIO_RESYNC_MS = 50;
const AAC_SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
const SAMPLE_FLAGS_SYNC = 0x02000000;
const SAMPLE_FLAGS_NON_SYNC = 0x01010000;
const UNITY_MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];

/** Sample rate and channels of an AudioSpecificConfig. */
export function parseAudioSpecificConfig(config: Buffer): { sampleRate: number; channels: number } {
  if (config.length < 2) throw new MediaFormatError(`an AudioSpecificConfig of ${config.length} bytes`);
  const rateIndex = ((config[0]! & 0x07) << 1) | (config[1]! >> 7);
  const sampleRate = rateIndex === 15 ? (((config[1]! & 0x7f) << 17) | (config[2]! << 9) | (config[3]! << 1) | (config[4]! >> 7)) : AAC_SAMPLE_RATES[rateIndex];
  if (!sampleRate) throw new MediaFormatError(`an AudioSpecificConfig with sampling index ${rateIndex}`);
  const channels = rateIndex === 15 ? (config[4]! >> 3) & 0x0f : (config[1]! >> 3) & 0x0f;
  return { sampleRate, channels: channels || 2 };
}

export class FragmentedMp4Writer {
  private readonly audioRate: number | undefined;
  private video: VideoSample[] = [];
  private audio: AudioSample[] = [];
  private sequence = 0;
  /** The last video sample's duration (90 kHz), for the one at the very end. */
  private lastVideoDuration = VIDEO_TIMESCALE / 30;
  /** Audio decode time (samples) the next fragment continues from. */
  private nextAudioTime: number | undefined;

  constructor(
    private readonly videoTrack: AvcTrack,
    private readonly audioTrack?: AacTrack,
  ) {
    this.audioRate = audioTrack ? parseAudioSpecificConfig(audioTrack.audioSpecificConfig).sampleRate : undefined;
  }

  /** ftyp + moov: what a player needs before the first fragment. */
  init(): Buffer {
    const traks = [this.videoTrak(), ...(this.audioTrack ? [this.audioTrak()] : [])];
    const trex = (trackId: number) => fullBox('trex', 0, 0, u32(trackId), u32(1), u32(0), u32(0), u32(0));
    const mvex = box('mvex', trex(VIDEO_TRACK_ID), ...(this.audioTrack ? [trex(AUDIO_TRACK_ID)] : []));
    const mvhd = fullBox('mvhd', 0, 0, u32(0), u32(0), u32(1000), u32(0), u32(0x00010000), u16(0x0100), zeros(10), ...UNITY_MATRIX.map(u32), zeros(24), u32(AUDIO_TRACK_ID + 1));
    const ftyp = box('ftyp', ascii('isom'), u32(0x200), ascii('isom'), ascii('iso6'), ascii('avc1'), ascii('mp41'));
    return Buffer.concat([ftyp, box('moov', mvhd, ...traks, mvex)]);
  }

  get pendingVideoSamples(): number {
    return this.video.length;
  }

  /** The pictures waiting for the next fragment, removed (to move them to another writer). */
  takeVideo(): VideoSample[] {
    const video = this.video;
    this.video = [];
    return video;
  }

  addVideo(sample: VideoSample): void {
    this.video.push(sample);
  }

  addAudio(sample: AudioSample): void {
    if (this.audioTrack) this.audio.push(sample);
  }

  /**
   * A fragment of every sample added since the last one: its header, then the samples' buffers.
   * `nextVideoDtsMs` (the next fragment's first picture) gives the last picture its duration.
   */
  fragment(nextVideoDtsMs?: number): Buffer[] {
    const video = this.video;
    const audio = this.audio;
    this.video = [];
    this.audio = [];
    if (video.length === 0) return [];
    const videoDurations = video.map((sample, i) => {
      const next = i + 1 < video.length ? video[i + 1]!.dtsMs : nextVideoDtsMs;
      const duration = next === undefined ? this.lastVideoDuration : Math.max(1, Math.round((next - sample.dtsMs) * 90));
      this.lastVideoDuration = duration;
      return duration;
    });
    const videoTraf = (dataOffset: number) =>
      box(
        'traf',
        fullBox('tfhd', 0, 0x020000, u32(VIDEO_TRACK_ID)),
        fullBox('tfdt', 1, 0, u64(Math.round(video[0]!.dtsMs * 90))),
        fullBox('trun', 1, 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800, u32(video.length), i32(dataOffset), ...video.flatMap((sample, i) => [u32(videoDurations[i]!), u32(sample.data.length), u32(sample.keyframe ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC), i32(Math.round(sample.ctsMs * 90))])),
      );
    const audioTraf = audio.length === 0 ? undefined : (dataOffset: number) => box('traf', fullBox('tfhd', 0, 0x020000, u32(AUDIO_TRACK_ID)), fullBox('tfdt', 1, 0, u64(this.audioStart(audio[0]!.dtsMs))), fullBox('trun', 0, 0x000001 | 0x000100 | 0x000200, u32(audio.length), i32(dataOffset), ...audio.flatMap((sample) => [u32(AAC_FRAME_SAMPLES), u32(sample.data.length)])));
    if (audioTraf) this.nextAudioTime = this.audioStart(audio[0]!.dtsMs) + audio.length * AAC_FRAME_SAMPLES;
    const videoBytes = video.reduce((sum, sample) => sum + sample.data.length, 0);
    const audioBytes = audio.reduce((sum, sample) => sum + sample.data.length, 0);
    const mfhd = fullBox('mfhd', 0, 0, u32(++this.sequence));
    // The moof's size does not depend on the offsets' values: measure it, then write them.
    const moofSize = box('moof', mfhd, videoTraf(0), ...(audioTraf ? [audioTraf(0)] : [])).length;
    const videoOffset = moofSize + 8;
    const moof = box('moof', mfhd, videoTraf(videoOffset), ...(audioTraf ? [audioTraf(videoOffset + videoBytes)] : []));
    const mdatHeader = Buffer.alloc(8);
    mdatHeader.writeUInt32BE(8 + videoBytes + audioBytes, 0);
    mdatHeader.write('mdat', 4, 'latin1');
    return [moof, mdatHeader, ...video.map((sample) => sample.data), ...audio.map((sample) => sample.data)];
  }

  /** Where this fragment's audio starts (samples): continuous with the last one unless it strayed. */
  private audioStart(dtsMs: number): number {
    const fromClock = Math.round((dtsMs * this.audioRate!) / 1000);
    const expected = this.nextAudioTime;
    return expected !== undefined && Math.abs(expected - fromClock) <= (AUDIO_RESYNC_MS * this.audioRate!) / 1000 ? expected : fromClock;
  }

  private videoTrak(): Buffer {
    const { width, height, avcC } = this.videoTrack;
    const avc1 = box('avc1', zeros(6), u16(1), zeros(16), u16(width), u16(height), u32(0x00480000), u32(0x00480000), u32(0), u16(1), zeros(32), u16(0x0018), u16(0xffff), box('avcC', avcC));
    const minf = box('minf', fullBox('vmhd', 0, 1, zeros(8)), dinf(), stbl(avc1));
    return trak(VIDEO_TRACK_ID, VIDEO_TIMESCALE, 'vide', 'VideoHandler', minf, { width, height });
  }

  private audioTrak(): Buffer {
    const config = this.audioTrack!.audioSpecificConfig;
    const { sampleRate, channels } = parseAudioSpecificConfig(config);
    const decoderSpecific = descriptor(0x05, config);
    const decoderConfig = descriptor(0x04, Buffer.from([0x40, 0x15, 0, 0, 0]), u32(0), u32(0), decoderSpecific);
    const esds = fullBox('esds', 0, 0, descriptor(0x03, u16(AUDIO_TRACK_ID), Buffer.from([0]), decoderConfig, descriptor(0x06, Buffer.from([0x02]))));
    const mp4a = box('mp4a', zeros(6), u16(1), zeros(8), u16(channels), u16(16), u16(0), u16(0), u32(sampleRate * 65536), esds);
    const minf = box('minf', fullBox('smhd', 0, 0, zeros(4)), dinf(), stbl(mp4a));
    return trak(AUDIO_TRACK_ID, sampleRate, 'soun', 'SoundHandler', minf);
  }
}

function trak(trackId: number, timescale: number, handler: string, name: string, minf: Buffer, size?: { width: number; height: number }): Buffer {
  const tkhd = fullBox('tkhd', 0, 3, u32(0), u32(0), u32(trackId), u32(0), u32(0), zeros(8), u16(0), u16(0), u16(size ? 0 : 0x0100), u16(0), ...UNITY_MATRIX.map(u32), u32((size?.width ?? 0) * 65536), u32((size?.height ?? 0) * 65536));
  const mdhd = fullBox('mdhd', 0, 0, u32(0), u32(0), u32(timescale), u32(0), u16(0x55c4), u16(0));
  const hdlr = fullBox('hdlr', 0, 0, u32(0), ascii(handler), zeros(12), Buffer.from(`${name}\0`, 'latin1'));
  return box('trak', tkhd, box('mdia', mdhd, hdlr, minf));
}

const dinf = () => box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, 1)));
const stbl = (sampleEntry: Buffer) =>
  box('stbl', fullBox('stsd', 0, 0, u32(1), sampleEntry), fullBox('stts', 0, 0, u32(0)), fullBox('stsc', 0, 0, u32(0)), fullBox('stsz', 0, 0, u32(0), u32(0)), fullBox('stco', 0, 0, u32(0)));

function box(type: string, ...payload: Buffer[]): Buffer {
  const size = 8 + payload.reduce((sum, part) => sum + part.length, 0);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(size, 0);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, ...payload], size);
}

function fullBox(type: string, version: number, flags: number, ...payload: Buffer[]): Buffer {
  return box(type, u32(((version & 0xff) << 24) | (flags & 0xffffff)), ...payload);
}

/** An MPEG-4 descriptor (ES, DecoderConfig, DecoderSpecificInfo, SLConfig) with a 4-byte length. */
function descriptor(tag: number, ...payload: Buffer[]): Buffer {
  const length = payload.reduce((sum, part) => sum + part.length, 0);
  return Buffer.concat([Buffer.from([tag, 0x80 | ((length >> 21) & 0x7f), 0x80 | ((length >> 14) & 0x7f), 0x80 | ((length >> 7) & 0x7f), length & 0x7f]), ...payload]);
}

function u16(value: number): Buffer {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16BE(value & 0xffff, 0);
  return buffer;
}

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value >>> 0, 0);
  return buffer;
}

function i32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeInt32BE(value, 0);
  return buffer;
}

function u64(value: number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(Math.max(0, value)), 0);
  return buffer;
}

const zeros = (length: number) => Buffer.alloc(length);
const ascii = (text: string) => Buffer.from(text, 'latin1');
