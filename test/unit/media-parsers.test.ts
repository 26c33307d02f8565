import { describe, expect, it } from 'vitest';
import { imageProblem } from '../../shared/outputs/images/check';
import { FlvFormatError, FlvTagReader, videoTagInfo, withTagData } from '../../shared/media/flv';
import { accessUnitWithoutReorder, avcConfigWithoutReorder, escapeRbsp, locateReorderField, nalLengthSize, spsWithoutReorder, unescapeRbsp } from '../../shared/media/h264-sps';
import { RawVideoMatroskaWriter } from '../../shared/media/mkv-writer';
import { Mp3FormatError, Mp3FrameReader, parseMp3FrameHeader } from '../../shared/media/mp3-frames';
import { Mp4FormatError, Mp4SegmentReader } from '../../shared/media/mp4-boxes';

/** x264 (veryfast, 3 B-frames), 1080p High profile: declares max_num_reorder_frames = 2. */
const SPS_WITH_REORDER = Buffer.from('67640028acd940780227e5c044000003000400000300f03c60c658', 'hex');
/** The same encoder without B-frames: already declares 0. */
const SPS_WITHOUT_REORDER = Buffer.from('67640028acb403c0113f2e0220000003002000000781e30654', 'hex');
const AVCC_WITH_REORDER = Buffer.from('01640028ffe1001b67640028acd940780227e5c044000003000400000300f03c60c65801000468ef8fcb', 'hex');

function flvTag(type: number, dts: number, data: Buffer): Buffer {
  const tag = Buffer.alloc(11 + data.length + 4);
  tag[0] = type;
  tag.writeUIntBE(data.length, 1, 3);
  tag.writeUIntBE(dts & 0xffffff, 4, 3);
  tag[7] = dts >>> 24;
  data.copy(tag, 11);
  tag.writeUInt32BE(11 + data.length, 11 + data.length);
  return tag;
}
const FLV_HEADER = Buffer.from('464c5601010000000900000000', 'hex');
/** An AVC NAL-unit video tag: frame type (1 key, 2 inter), codec 7, packet type 1, composition time. */
const avcTag = (dts: number, keyframe: boolean, cts: number, payload = Buffer.from('00000001aa', 'hex')) => {
  const data = Buffer.alloc(5 + payload.length);
  data[0] = (keyframe ? 0x10 : 0x20) | 7;
  data[1] = 1;
  data.writeIntBE(cts, 2, 3);
  payload.copy(data, 5);
  return flvTag(9, dts, data);
};

describe('FlvTagReader', () => {
  it('hands out whole tags only, however the bytes are split', () => {
    const stream = Buffer.concat([FLV_HEADER, avcTag(0, true, 67), flvTag(8, 10, Buffer.from('af01', 'hex')), avcTag(33, false, -33), avcTag(2 ** 24 + 5, true, 0)]);
    for (const chunkSize of [1, 3, 7, 64, stream.length]) {
      const reader = new FlvTagReader();
      const tags = [];
      for (let offset = 0; offset < stream.length; offset += chunkSize) tags.push(...reader.push(stream.subarray(offset, offset + chunkSize)));
      expect(reader.fileHeader).toEqual(FLV_HEADER);
      expect(reader.bufferedBytes).toBe(0);
      expect(tags.map((tag) => [tag.type, tag.dts])).toEqual([[9, 0], [8, 10], [9, 33], [9, 2 ** 24 + 5]]);
      expect(Buffer.concat([FLV_HEADER, ...tags.map((tag) => tag.bytes)])).toEqual(stream);
      expect(tags.map((tag) => videoTagInfo(tag))).toEqual([
        { codecId: 7, keyframe: true, avcPacketType: 1, pts: 67 },
        undefined,
        { codecId: 7, keyframe: false, avcPacketType: 1, pts: 0 },
        { codecId: 7, keyframe: true, avcPacketType: 1, pts: 2 ** 24 + 5 },
      ]);
    }
  });

  it('keeps a cut tag back until the rest arrives', () => {
    const reader = new FlvTagReader();
    const tag = avcTag(40, true, 0);
    expect(reader.push(Buffer.concat([FLV_HEADER, tag.subarray(0, tag.length - 1)]))).toEqual([]);
    expect(reader.bufferedBytes).toBe(tag.length - 1);
    expect(reader.push(tag.subarray(tag.length - 1))).toHaveLength(1);
  });

  it('refuses what is not FLV', () => {
    expect(() => new FlvTagReader().push(Buffer.from('GIF89a-not-an-flv-stream'))).toThrow(FlvFormatError);
  });

  it('replaces a tag body with sizes fixed up', () => {
    const reader = new FlvTagReader();
    const [tag] = reader.push(Buffer.concat([FLV_HEADER, avcTag(1234, true, 0)]));
    const replaced = withTagData(tag!, Buffer.from('17000000deadbeef', 'hex'));
    const [reread] = new FlvTagReader().push(Buffer.concat([FLV_HEADER, replaced.bytes]));
    expect(reread!.dts).toBe(1234);
    expect(reread!.data.toString('hex')).toBe('17000000deadbeef');
  });
});

describe('H.264 SPS rewrite for keyframe-only decoding', () => {
  it('escapes and unescapes emulation-prevention bytes', () => {
    const rbsp = Buffer.from('0000010000000300000200', 'hex');
    expect(escapeRbsp(rbsp).toString('hex')).toBe('0000030100000300030000030200');
    expect(unescapeRbsp(escapeRbsp(rbsp))).toEqual(rbsp);
  });

  it('finds the reorder field of a real x264 SPS', () => {
    expect(locateReorderField(unescapeRbsp(SPS_WITH_REORDER.subarray(1)))).toMatchObject({ value: 2 });
    expect(locateReorderField(unescapeRbsp(SPS_WITHOUT_REORDER.subarray(1)))).toMatchObject({ value: 0 });
  });

  it('declares no reordering and changes nothing else', () => {
    const rewritten = spsWithoutReorder(SPS_WITH_REORDER);
    const before = unescapeRbsp(SPS_WITH_REORDER.subarray(1));
    const after = unescapeRbsp(rewritten.subarray(1));
    const field = locateReorderField(before)!;
    expect(locateReorderField(after)).toMatchObject({ value: 0, startBit: field.startBit });
    // Every bit before the field is the same.
    const bitsOf = (bytes: Buffer, count: number) => [...bytes].map((b) => b.toString(2).padStart(8, '0')).join('').slice(0, count);
    expect(bitsOf(after, field.startBit)).toBe(bitsOf(before, field.startBit));
    // max_dec_frame_buffering and the stop bit follow, shifted by the shorter code.
    expect(bitsOf(after, after.length * 8).slice(field.startBit + 1).replace(/0+$/, '')).toBe(bitsOf(before, before.length * 8).slice(field.endBit).replace(/0+$/, ''));
  });

  it('leaves an SPS that declares no reordering as it is', () => {
    expect(spsWithoutReorder(SPS_WITHOUT_REORDER)).toBe(SPS_WITHOUT_REORDER);
  });

  it('rewrites an SPS repeated inside a keyframe access unit, and nothing else in it', () => {
    const nal = (bytes: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes]);
    const idr = Buffer.from('6588840021ffff', 'hex');
    const unit = Buffer.concat([nal(Buffer.from('09f0', 'hex')), nal(SPS_WITH_REORDER), nal(Buffer.from('68ef8fcb', 'hex')), nal(idr)]);
    const rewritten = accessUnitWithoutReorder(unit, 4);
    expect(rewritten).toEqual(Buffer.concat([nal(Buffer.from('09f0', 'hex')), nal(spsWithoutReorder(SPS_WITH_REORDER)), nal(Buffer.from('68ef8fcb', 'hex')), nal(idr)]));
    const withoutSps = Buffer.concat([nal(idr)]);
    expect(accessUnitWithoutReorder(withoutSps, 4)).toBe(withoutSps);
    expect(nalLengthSize(AVCC_WITH_REORDER)).toBe(4);
  });

  it('rewrites every SPS of an avcC record and keeps the PPS', () => {
    const record = avcConfigWithoutReorder(AVCC_WITH_REORDER);
    const spsLength = record.readUInt16BE(6);
    expect(record.subarray(8, 8 + spsLength)).toEqual(spsWithoutReorder(SPS_WITH_REORDER));
    expect(record.subarray(8 + spsLength).toString('hex')).toBe('01000468ef8fcb');
    expect(avcConfigWithoutReorder(Buffer.from('02', 'hex'))).toEqual(Buffer.from('02', 'hex'));
  });
});

describe('imageProblem', () => {
  const jpeg = Buffer.from('ffd8ffe000104a464946ffd9', 'hex');
  const png = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(25, 7), Buffer.from('0000000049454e44ae426082', 'hex')]);
  const webp = (() => {
    const file = Buffer.alloc(20);
    file.write('RIFF', 0, 'latin1');
    file.writeUInt32LE(12, 4);
    file.write('WEBPVP8 ', 8, 'latin1');
    return file;
  })();
  const check = (format: 'jpg' | 'png' | 'webp', bytes: Buffer) => imageProblem(format, bytes.length, bytes.subarray(0, 16), bytes.subarray(-16));

  it('accepts complete images', () => {
    expect(check('jpg', jpeg)).toBeNull();
    expect(check('png', png)).toBeNull();
    expect(check('webp', webp)).toBeNull();
  });

  it('refuses empty, cut and foreign files, saying why', () => {
    expect(imageProblem('jpg', 0, Buffer.alloc(0), Buffer.alloc(0))).toBe('empty file');
    expect(check('jpg', jpeg.subarray(0, -1))).toMatch(/end-of-image/);
    expect(check('jpg', png)).toMatch(/start-of-image/);
    expect(check('png', png.subarray(0, -3))).toMatch(/IEND/);
    expect(check('webp', webp.subarray(0, -1))).toMatch(/RIFF size 20 does not match the file's 19 bytes/);
    expect(check('webp', jpeg)).toMatch(/RIFF/);
  });
});

const box = (type: string, payload: number) => {
  const bytes = Buffer.alloc(8 + payload, 1);
  bytes.writeUInt32BE(8 + payload, 0);
  bytes.write(type, 4, 'latin1');
  return bytes;
};

describe('Mp4SegmentReader', () => {
  it('hands out the init segment, then one media segment per fragment, however the bytes are split', () => {
    const init = [box('ftyp', 16), box('moov', 300)];
    const fragments = [[box('moof', 40), box('mdat', 1000)], [box('sidx', 12), box('moof', 40), box('mdat', 20)]];
    const stream = Buffer.concat([...init, ...fragments.flat()]);
    for (const chunkSize of [1, 7, 100, stream.length]) {
      const reader = new Mp4SegmentReader();
      const segments = [];
      for (let offset = 0; offset < stream.length; offset += chunkSize) segments.push(...reader.push(stream.subarray(offset, offset + chunkSize)));
      expect(segments.map((s) => s.kind)).toEqual(['init', 'fragment', 'fragment']);
      expect(segments[0]!.bytes).toEqual(Buffer.concat(init));
      expect(segments[1]!.bytes).toEqual(Buffer.concat(fragments[0]!));
      expect(segments[2]!.bytes).toEqual(Buffer.concat(fragments[1]!));
      expect(reader.bufferedBytes).toBe(0);
    }
  });

  it('keeps a fragment back until its mdat is whole, and refuses boxes of unknown size', () => {
    const reader = new Mp4SegmentReader();
    expect(reader.push(Buffer.concat([box('ftyp', 8), box('moov', 8), box('moof', 8), box('mdat', 100).subarray(0, 50)])).map((s) => s.kind)).toEqual(['init']);
    expect(reader.bufferedBytes).toBe(16 + 50);
    const unsized = box('mdat', 4);
    unsized.writeUInt32BE(0, 0);
    expect(() => new Mp4SegmentReader().push(unsized)).toThrow(Mp4FormatError);
  });
});

/** An MPEG-1 Layer III frame header: 64 kbit/s at 48 kHz, no padding: 192 bytes. */
const mp3Frame = (fill: number) => Buffer.concat([Buffer.from([0xff, 0xfb, 0x54, 0xc4]), Buffer.alloc(188, fill)]);

describe('MP3 frames', () => {
  it('reads frame headers: size and samples', () => {
    expect(parseMp3FrameHeader(mp3Frame(0))).toEqual({ bytes: 192, sampleRate: 48000, samples: 1152 });
    expect(parseMp3FrameHeader(Buffer.from([0xff, 0xf3, 0x54, 0xc4]))).toMatchObject({ sampleRate: 24000, samples: 576 }); // MPEG-2
    expect(parseMp3FrameHeader(Buffer.from('ID3\x04', 'latin1'))).toBeUndefined();
  });

  it('passes on whole frames only and counts their samples', () => {
    const reader = new Mp3FrameReader();
    const stream = Buffer.concat([mp3Frame(1), mp3Frame(2), mp3Frame(3)]);
    const first = reader.push(stream.subarray(0, 300));
    expect(first).toEqual({ bytes: stream.subarray(0, 192), samples: 1152 });
    const rest = reader.push(stream.subarray(300));
    expect(Buffer.concat([first.bytes, rest.bytes])).toEqual(stream);
    expect(rest.samples).toBe(2304);
    expect(() => new Mp3FrameReader().push(Buffer.from('not an mp3 stream at all'))).toThrow(Mp3FormatError);
  });
});

describe('RawVideoMatroskaWriter', () => {
  it('writes each picture by reference with a strictly increasing timestamp, in clusters', () => {
    const writer = new RawVideoMatroskaWriter(4, 2);
    expect(writer.header().subarray(0, 4).toString('hex')).toBe('1a45dfa3');
    expect(writer.header().includes(Buffer.from('V_UNCOMPRESSED'))).toBe(true);
    const picture = Buffer.alloc(12, 7);
    const first = writer.frame(0, picture);
    expect(first.at(-1)).toBe(picture);
    expect(first[0]!.toString('hex')).toBe('1f43b675'); // a cluster starts the stream
    expect(writer.frame(66.7, picture)[0]!.toString('hex')).toBe('a3'); // then blocks
    expect(() => writer.frame(40, picture)).toThrow(RangeError);
    expect(writer.frame(20_000, picture)[0]!.toString('hex')).toBe('1f43b675'); // 16-bit block times: a new cluster
  });
});
