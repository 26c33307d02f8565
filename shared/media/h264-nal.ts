import { BitReader, parseSps, unescapeRbsp, type SpsInfo } from './h264-sps';

/**
 * What one H.264 access unit (length-prefixed NAL units, as FLV and MP4 carry them) is, read from
 * its NAL headers and the first fields of its slice header: enough to decide what a decoder must
 * be fed to show this picture, without decoding anything.
 */

export type SliceType = 'P' | 'B' | 'I' | 'SP' | 'SI';
const SLICE_TYPES: readonly SliceType[] = ['P', 'B', 'I', 'SP', 'SI'];

const NAL_SLICE = 1;
const NAL_IDR = 5;
const NAL_SEI = 6;
const NAL_SPS = 7;
const SEI_RECOVERY_POINT = 6;

export interface AccessUnitInfo {
  /** An IDR picture: decodable alone, and nothing after it refers to anything before it. */
  idr: boolean;
  /** The picture's slice type (of its first slice); undefined when it carries no slice. */
  sliceType?: SliceType;
  /** nal_ref_idc of its slices: 0 means no other picture refers to this one, so it can be left out. */
  reference: boolean;
  /** The SEI recovery point's recovery_frame_cnt, when the unit carries one (intra refresh, open GOP). */
  recoveryFrames?: number;
  /** An SPS carried in band. */
  sps?: SpsInfo;
}

/** Each NAL unit of a length-prefixed access unit; stops at the first length that overruns. */
export function* nalUnits(unit: Buffer, lengthSize: number): Generator<Buffer> {
  for (let offset = 0; offset + lengthSize <= unit.length; ) {
    const length = unit.readUIntBE(offset, lengthSize);
    const start = offset + lengthSize;
    if (length === 0 || start + length > unit.length) return;
    yield unit.subarray(start, start + length);
    offset = start + length;
  }
}

export function accessUnitInfo(unit: Buffer, lengthSize: number): AccessUnitInfo {
  const info: AccessUnitInfo = { idr: false, reference: false };
  for (const nal of nalUnits(unit, lengthSize)) {
    const type = nal[0]! & 0x1f;
    if (type === NAL_SLICE || type === NAL_IDR) {
      info.reference ||= (nal[0]! & 0x60) !== 0;
      info.idr ||= type === NAL_IDR;
      info.sliceType ??= sliceTypeOf(nal);
    } else if (type === NAL_SEI) {
      info.recoveryFrames ??= recoveryFrameCount(nal);
    } else if (type === NAL_SPS) {
      try {
        info.sps = parseSps(unescapeRbsp(nal.subarray(1)));
      } catch {
        // A truncated SPS tells us nothing; the decoder will say what it makes of it.
      }
    }
  }
  return info;
}

/** first_mb_in_slice, then slice_type (0–9; 5–9 mean every slice of the picture has that type). */
function sliceTypeOf(nal: Buffer): SliceType | undefined {
  try {
    const reader = new BitReader(unescapeRbsp(nal.subarray(1, 16)));
    reader.ue();
    return SLICE_TYPES[reader.ue() % 5];
  } catch {
    return undefined;
  }
}

/** recovery_frame_cnt of a recovery point message in an SEI NAL unit, if it has one. */
function recoveryFrameCount(nal: Buffer): number | undefined {
  const rbsp = unescapeRbsp(nal.subarray(1));
  let offset = 0;
  while (offset < rbsp.length && rbsp[offset] !== 0x80) {
    let payloadType = 0;
    while (rbsp[offset] === 0xff) payloadType += rbsp[offset++]!;
    payloadType += rbsp[offset++] ?? 0;
    let payloadSize = 0;
    while (rbsp[offset] === 0xff) payloadSize += rbsp[offset++]!;
    payloadSize += rbsp[offset++] ?? 0;
    if (payloadType === SEI_RECOVERY_POINT) {
      try {
        return new BitReader(rbsp.subarray(offset, offset + payloadSize)).ue();
      } catch {
        return undefined;
      }
    }
    offset += payloadSize;
  }
  return undefined;
}
