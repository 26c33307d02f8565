import { MediaFormatError } from '../errors';
import type { Mp4Segment } from './mp4-boxes';

/**
 * CMAF for HLS from a fragmented MP4 stream (the encoder's `+frag_keyframe+empty_moov
 * +default_base_moof` output, cut by Mp4SegmentReader): the init segment as it is, and its
 * fragments grouped into media segments of about SEGMENT_TARGET_SEC, each with its duration read
 * from the fragments' own boxes (tfdt, trun, tfhd/trex defaults), not from a clock.
 */

/** A segment is closed once it holds this much media (two 2 s GOPs). */
export const SEGMENT_TARGET_SEC = 4;
/**
 * The playlist's EXT-X-TARGETDURATION. A segment never grows past it: a fragment that would
 * carry it over starts the next segment. Fixed, because an EVENT playlist may not change it.
 */
export const SEGMENT_MAX_SEC = 6;

export class CmafFormatError extends MediaFormatError {}

interface TrackTiming {
  id: number;
  timescale: number;
  handler: string;
  defaultSampleDuration: number;
}

export interface CmafSegment {
  kind: 'init' | 'segment';
  bytes: Buffer;
  /** Media seconds in the segment (0 for init). */
  durationSec: number;
}

interface Box {
  type: string;
  /** The box's payload (after its header). */
  body: Buffer;
}

function* boxes(buffer: Buffer): Generator<Box> {
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    let size = buffer.readUInt32BE(offset);
    const type = buffer.toString('latin1', offset + 4, offset + 8);
    let header = 8;
    if (size === 1) {
      size = Number(buffer.readBigUInt64BE(offset + 8));
      header = 16;
    } else if (size === 0) {
      size = buffer.length - offset;
    }
    if (size < header || offset + size > buffer.length) throw new CmafFormatError(`MP4 box '${type}' at ${offset} runs past its parent (${size} bytes)`);
    yield { type, body: buffer.subarray(offset + header, offset + size) };
    offset += size;
  }
}

const child = (box: Box, type: string) => [...boxes(box.body)].find((inner) => inner.type === type);
const children = (box: Box, type: string) => [...boxes(box.body)].filter((inner) => inner.type === type);
/** A full box's version; its fields start 4 bytes in. */
const version = (box: Box) => box.body.readUInt8(0);
const flags = (box: Box) => box.body.readUIntBE(1, 3);

/** The tracks of an init segment: id, timescale, kind, and trex's default sample duration. */
export function initTracks(init: Buffer): TrackTiming[] {
  const moov = [...boxes(init)].find((box) => box.type === 'moov');
  if (!moov) throw new CmafFormatError('the init segment has no moov box');
  const trexDefaults = new Map<number, number>();
  const mvex = child(moov, 'mvex');
  for (const trex of mvex ? children(mvex, 'trex') : []) trexDefaults.set(trex.body.readUInt32BE(4), trex.body.readUInt32BE(12));
  return children(moov, 'trak').map((trak) => {
    const tkhd = child(trak, 'tkhd');
    const mdia = child(trak, 'mdia');
    const mdhd = mdia && child(mdia, 'mdhd');
    const hdlr = mdia && child(mdia, 'hdlr');
    if (!tkhd || !mdhd || !hdlr) throw new CmafFormatError('a trak of the init segment lacks tkhd, mdhd or hdlr');
    const id = tkhd.body.readUInt32BE(version(tkhd) === 1 ? 20 : 12);
    return {
      id,
      timescale: mdhd.body.readUInt32BE(version(mdhd) === 1 ? 20 : 12),
      handler: hdlr.body.toString('latin1', 8, 12),
      defaultSampleDuration: trexDefaults.get(id) ?? 0,
    };
  });
}

/** Start and length (in the track's timescale) of one track's samples in a fragment (moof + mdat). */
export function fragmentTiming(fragment: Buffer, track: TrackTiming): { start: number; duration: number } | undefined {
  const moof = [...boxes(fragment)].find((box) => box.type === 'moof');
  if (!moof) throw new CmafFormatError('a fragment has no moof box');
  for (const traf of children(moof, 'traf')) {
    const tfhd = child(traf, 'tfhd');
    if (!tfhd || tfhd.body.readUInt32BE(4) !== track.id) continue;
    // tfhd's optional fields, in order: base_data_offset (8), sample_description_index, default_sample_duration.
    const tfhdFlags = flags(tfhd);
    let at = 8 + (tfhdFlags & 0x1 ? 8 : 0) + (tfhdFlags & 0x2 ? 4 : 0);
    const defaultDuration = tfhdFlags & 0x8 ? tfhd.body.readUInt32BE(at) : track.defaultSampleDuration;
    const tfdt = child(traf, 'tfdt');
    const start = tfdt ? (version(tfdt) === 1 ? Number(tfdt.body.readBigUInt64BE(4)) : tfdt.body.readUInt32BE(4)) : 0;
    let duration = 0;
    for (const trun of children(traf, 'trun')) {
      const trunFlags = flags(trun);
      const count = trun.body.readUInt32BE(4);
      at = 8 + (trunFlags & 0x1 ? 4 : 0) + (trunFlags & 0x4 ? 4 : 0);
      const perSample = [0x100, 0x200, 0x400, 0x800].filter((flag) => trunFlags & flag).length * 4;
      if (!(trunFlags & 0x100)) {
        duration += count * defaultDuration;
        continue;
      }
      for (let sample = 0; sample < count; sample++) duration += trun.body.readUInt32BE(at + sample * perSample);
    }
    return { start, duration };
  }
  return undefined;
}

/**
 * Groups a fragmented MP4's fragments into HLS media segments, timed by how far the recording is
 * complete: the earliest of the tracks' ends so far. The tracks need not end together in a
 * fragment (while an anchor is away, one black picture spans the time away and the audio goes on
 * in fragments of its own), so a fragment's own length could count time twice; the segments'
 * durations add up to the recording's.
 */
export class CmafSegmenter {
  private tracks: TrackTiming[] | undefined;
  /** Each track's end so far (s), once it has had samples. */
  private readonly trackEnds = new Map<number, number>();
  private fragments: Buffer[] = [];
  /** Where the segment being assembled starts, and how far it reaches (s). */
  private segmentStart: number | undefined;
  private reached = 0;

  push(piece: Mp4Segment): CmafSegment[] {
    if (piece.kind === 'init') {
      this.tracks = initTracks(piece.bytes);
      if (this.tracks.length === 0) throw new CmafFormatError('the init segment has no track');
      return [{ kind: 'init', bytes: piece.bytes, durationSec: 0 }];
    }
    if (!this.tracks) throw new CmafFormatError('a fragment came before the init segment');
    for (const track of this.tracks) {
      const timing = fragmentTiming(piece.bytes, track);
      if (!timing || timing.duration === 0) continue;
      this.segmentStart ??= timing.start / track.timescale;
      this.trackEnds.set(track.id, (timing.start + timing.duration) / track.timescale);
    }
    const reaches = this.trackEnds.size > 0 ? Math.max(this.reached, Math.min(...this.trackEnds.values())) : this.reached;
    const out: CmafSegment[] = [];
    if (this.fragments.length > 0 && reaches - this.segmentStart! > SEGMENT_MAX_SEC) out.push(this.take());
    this.fragments.push(piece.bytes);
    this.reached = reaches;
    // A hair under the target, so two 2 s GOPs whose timestamps round down still make one segment.
    if (this.segmentStart !== undefined && this.reached - this.segmentStart >= SEGMENT_TARGET_SEC - 0.05) out.push(this.take());
    return out;
  }

  /** The fragments not yet in a segment, as the last (shorter) segment. */
  flush(): CmafSegment[] {
    return this.fragments.length > 0 ? [this.take()] : [];
  }

  private take(): CmafSegment {
    const durationSec = Math.max(0, this.reached - (this.segmentStart ?? this.reached));
    const segment: CmafSegment = { kind: 'segment', bytes: this.fragments.length === 1 ? this.fragments[0]! : Buffer.concat(this.fragments), durationSec };
    this.fragments = [];
    this.segmentStart = this.reached;
    return segment;
  }
}
