/**
 * Rewrites an H.264 sequence parameter set so a decoder that is fed keyframes only outputs each
 * picture at once. A stream with B-frames declares `max_num_reorder_frames` (usually 2) in its
 * VUI, and the h264 decoder then holds that many pictures back — with keyframes only, that many
 * GOPs. A keyframe-only feed never reorders, so declaring 0 is true for what the decoder gets.
 * Never use it on a feed that still carries B-frames.
 */

/** Reads bits and Exp-Golomb codes from an RBSP; throws a RangeError when it runs out. */
export class BitReader {
  private position = 0;
  constructor(private readonly bytes: Buffer) {}

  get bitPosition(): number {
    return this.position;
  }

  bit(): number {
    const byte = this.bytes[this.position >> 3];
    if (byte === undefined) throw new RangeError('the RBSP ended early');
    const value = (byte >> (7 - (this.position & 7))) & 1;
    this.position++;
    return value;
  }

  bits(count: number): number {
    let value = 0;
    for (let i = 0; i < count; i++) value = value * 2 + this.bit();
    return value;
  }

  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      if (++zeros > 31) throw new RangeError('bad Exp-Golomb code');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }

  se(): number {
    const code = this.ue();
    return code & 1 ? (code + 1) / 2 : -code / 2;
  }
}

class BitWriter {
  private readonly out: number[] = [];
  private current = 0;
  private used = 0;

  bit(value: number): void {
    this.current = (this.current << 1) | (value & 1);
    if (++this.used === 8) {
      this.out.push(this.current);
      this.current = 0;
      this.used = 0;
    }
  }

  ue(value: number): void {
    const coded = value + 1;
    const length = Math.floor(Math.log2(coded));
    for (let i = 0; i < length; i++) this.bit(0);
    for (let i = length; i >= 0; i--) this.bit(Math.floor(coded / 2 ** i) & 1);
  }

  copy(from: Buffer, startBit: number, endBit: number): void {
    for (let position = startBit; position < endBit; position++) this.bit((from[position >> 3]! >> (7 - (position & 7))) & 1);
  }

  get aligned(): boolean {
    return this.used === 0;
  }

  bytes(): Buffer {
    if (!this.aligned) throw new Error('unaligned write');
    return Buffer.from(this.out);
  }
}

/** Emulation-prevention bytes out (NAL payload → RBSP). */
export function unescapeRbsp(nal: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < nal.length; i++) {
    if (i >= 2 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0 && out.length >= 2 && out[out.length - 1] === 0 && out[out.length - 2] === 0) continue;
    out.push(nal[i]!);
  }
  return Buffer.from(out);
}

/** Emulation-prevention bytes in (RBSP → NAL payload). */
export function escapeRbsp(rbsp: Buffer): Buffer {
  const out: number[] = [];
  let zeros = 0;
  for (const byte of rbsp) {
    if (zeros >= 2 && byte <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(byte);
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return Buffer.from(out);
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

function skipScalingList(reader: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + reader.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

function skipHrd(reader: BitReader): void {
  const count = reader.ue() + 1;
  reader.bits(8); // bit_rate_scale, cpb_size_scale
  for (let i = 0; i < count; i++) {
    reader.ue();
    reader.ue();
    reader.bit();
  }
  reader.bits(20); // four 5-bit delay lengths
}

/** What a snapshot needs to know about a stream from its sequence parameter set. */
export interface SpsInfo {
  profileIdc: number;
  /** 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. */
  chromaFormat: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  /** The coded size after cropping, in pixels. */
  width: number;
  height: number;
  /** VUI video_full_range_flag; undefined when the SPS does not say (video range then). */
  fullRange?: boolean;
  /** VUI matrix_coefficients (1 BT.709, 5/6 BT.601, 9 BT.2020…); undefined when the SPS does not say. */
  matrix?: number;
  /** Where `max_num_reorder_frames` sits, or undefined when the SPS has no VUI bitstream restriction. */
  reorder?: { startBit: number; endBit: number; value: number };
}

/** Reads an SPS RBSP (the bytes after the NAL header). Throws a RangeError on a truncated SPS. */
export function parseSps(rbsp: Buffer): SpsInfo {
  const reader = new BitReader(rbsp);
  const profileIdc = reader.bits(8);
  reader.bits(16); // constraint flags, level
  reader.ue(); // seq_parameter_set_id
  let chromaFormat = 1;
  let bitDepthLuma = 8;
  let bitDepthChroma = 8;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormat = reader.ue();
    if (chromaFormat === 3) reader.bit(); // separate_colour_plane_flag
    bitDepthLuma = reader.ue() + 8;
    bitDepthChroma = reader.ue() + 8;
    reader.bit();
    if (reader.bit()) {
      for (let i = 0; i < (chromaFormat !== 3 ? 8 : 12); i++) if (reader.bit()) skipScalingList(reader, i < 6 ? 16 : 64);
    }
  }
  reader.ue(); // log2_max_frame_num_minus4
  const pocType = reader.ue();
  if (pocType === 0) reader.ue();
  else if (pocType === 1) {
    reader.bit();
    reader.se();
    reader.se();
    const cycle = reader.ue();
    for (let i = 0; i < cycle; i++) reader.se();
  }
  reader.ue(); // max_num_ref_frames
  reader.bit();
  const widthInMbs = reader.ue() + 1;
  const heightInMapUnits = reader.ue() + 1;
  const frameMbsOnly = reader.bit();
  if (!frameMbsOnly) reader.bit(); // mb_adaptive_frame_field_flag
  reader.bit(); // direct_8x8_inference_flag
  const crop = { left: 0, right: 0, top: 0, bottom: 0 };
  if (reader.bit()) {
    crop.left = reader.ue();
    crop.right = reader.ue();
    crop.top = reader.ue();
    crop.bottom = reader.ue();
  }
  // Cropping is in chroma sample units (4:2:0 halves both directions, 4:2:2 only the width).
  const cropUnitX = chromaFormat === 1 || chromaFormat === 2 ? 2 : 1;
  const cropUnitY = (chromaFormat === 1 ? 2 : 1) * (2 - frameMbsOnly);
  const info: SpsInfo = {
    profileIdc,
    chromaFormat,
    bitDepthLuma,
    bitDepthChroma,
    width: widthInMbs * 16 - cropUnitX * (crop.left + crop.right),
    height: (2 - frameMbsOnly) * heightInMapUnits * 16 - cropUnitY * (crop.top + crop.bottom),
  };
  if (!reader.bit()) return info; // no VUI
  if (reader.bit() && reader.bits(8) === 255) reader.bits(32); // aspect ratio, extended SAR
  if (reader.bit()) reader.bit(); // overscan
  if (reader.bit()) {
    reader.bits(3); // video_format
    info.fullRange = reader.bit() === 1;
    if (reader.bit()) {
      reader.bits(16); // colour primaries, transfer characteristics
      info.matrix = reader.bits(8);
    }
  }
  if (reader.bit()) {
    reader.ue();
    reader.ue();
  }
  if (reader.bit()) reader.bits(65); // timing info
  const nalHrd = reader.bit();
  if (nalHrd) skipHrd(reader);
  const vclHrd = reader.bit();
  if (vclHrd) skipHrd(reader);
  if (nalHrd || vclHrd) reader.bit();
  reader.bit(); // pic_struct_present_flag
  if (!reader.bit()) return info; // bitstream_restriction_flag
  reader.bit();
  for (let i = 0; i < 4; i++) reader.ue();
  const startBit = reader.bitPosition;
  const value = reader.ue();
  info.reorder = { startBit, endBit: reader.bitPosition, value };
  return info;
}

/**
 * Where `max_num_reorder_frames` sits in an SPS RBSP (the bytes after the NAL header), or
 * undefined when the SPS has no VUI bitstream restriction (the decoder then assumes no reorder).
 */
export function locateReorderField(rbsp: Buffer): { startBit: number; endBit: number; value: number } | undefined {
  return parseSps(rbsp).reorder;
}

/** An SPS NAL unit (header byte included) that declares no reordering; the input when there is nothing to change. */
export function spsWithoutReorder(spsNal: Buffer): Buffer {
  const rbsp = unescapeRbsp(spsNal.subarray(1));
  const field = locateReorderField(rbsp);
  if (!field || field.value === 0) return spsNal;
  // Bits after the field end with the RBSP stop bit and zero padding; keep them, re-pad.
  const lastOne = lastSetBit(rbsp);
  const writer = new BitWriter();
  writer.copy(rbsp, 0, field.startBit);
  writer.ue(0);
  writer.copy(rbsp, field.endBit, lastOne + 1);
  while (!writer.aligned) writer.bit(0);
  return Buffer.concat([spsNal.subarray(0, 1), escapeRbsp(writer.bytes())]);
}

function lastSetBit(bytes: Buffer): number {
  for (let i = bytes.length - 1; i >= 0; i--) {
    const byte = bytes[i]!;
    if (byte !== 0) return i * 8 + 7 - Math.log2(byte & -byte);
  }
  throw new RangeError('SPS has no stop bit');
}

/**
 * The same AVCDecoderConfigurationRecord (FLV/MP4 `avcC`) with every SPS declaring no reorder.
 * Returns the input when nothing needs changing or the record is not one we can read.
 */
export function avcConfigWithoutReorder(record: Buffer): Buffer {
  if (record.length < 7 || record[0] !== 1) return record;
  const parts: Buffer[] = [record.subarray(0, 6)];
  let offset = 6;
  const spsCount = record[5]! & 0x1f;
  let changed = false;
  try {
    for (let i = 0; i < spsCount; i++) {
      const length = record.readUInt16BE(offset);
      const sps = record.subarray(offset + 2, offset + 2 + length);
      const rewritten = spsWithoutReorder(sps);
      changed ||= rewritten !== sps;
      const size = Buffer.alloc(2);
      size.writeUInt16BE(rewritten.length);
      parts.push(size, rewritten);
      offset += 2 + length;
    }
  } catch {
    return record;
  }
  if (!changed) return record;
  parts.push(record.subarray(offset));
  return Buffer.concat(parts);
}

/**
 * The same AVC access unit (length-prefixed NAL units, as in FLV and MP4) with any SPS it carries
 * declaring no reorder: encoders that repeat the SPS before each keyframe would otherwise
 * re-declare it. Returns the input when there is nothing to change.
 */
export function accessUnitWithoutReorder(unit: Buffer, lengthSize: number): Buffer {
  const parts: Buffer[] = [];
  let changed = false;
  for (let offset = 0; offset + lengthSize <= unit.length; ) {
    const length = unit.readUIntBE(offset, lengthSize);
    const nal = unit.subarray(offset + lengthSize, offset + lengthSize + length);
    if (nal.length !== length) return unit; // not a unit we can read: leave it alone
    let out = nal;
    if ((nal[0]! & 0x1f) === 7) {
      try {
        out = spsWithoutReorder(nal);
      } catch {
        out = nal;
      }
    }
    if (out !== nal) {
      changed = true;
      const size = Buffer.alloc(lengthSize);
      size.writeUIntBE(out.length, 0, lengthSize);
      parts.push(size, out);
    } else {
      parts.push(unit.subarray(offset, offset + lengthSize + length));
    }
    offset += lengthSize + length;
  }
  return changed ? Buffer.concat(parts) : unit;
}

/** NAL length-field size from an AVCDecoderConfigurationRecord (usually 4). */
export function nalLengthSize(record: Buffer): number {
  return record.length > 4 ? (record[4]! & 0x03) + 1 : 4;
}

/** The first SPS of an AVCDecoderConfigurationRecord. */
export function firstSpsOf(record: Buffer): SpsInfo | undefined {
  if (record.length < 8 || (record[5]! & 0x1f) === 0) return undefined;
  const length = record.readUInt16BE(6);
  try {
    return parseSps(unescapeRbsp(record.subarray(9, 8 + length)));
  } catch {
    return undefined;
  }
}
