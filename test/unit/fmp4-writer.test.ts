import { describe, expect, it } from 'vitest';
import { FragmentedMp4Writer, parseAudioSpecificConfig } from '../../shared/media/fmp4-writer';

/** Top-level boxes (type, offset, size) of an ISO BMFF buffer. */
function boxes(bytes: Buffer, from = 0, to = bytes.length): Array<{ type: string; offset: number; size: number }> {
  const out = [];
  for (let offset = from; offset + 8 <= to; ) {
    const size = bytes.readUInt32BE(offset);
    out.push({ type: bytes.toString('latin1', offset + 4, offset + 8), offset, size });
    offset += size;
  }
  return out;
}

const avcC = Buffer.from([1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee, 0x3c, 0x80]);
const aac = Buffer.from([0x12, 0x10]); // AAC-LC, 44.1 kHz, 2 channels

describe('FragmentedMp4Writer', () => {
  it('reads an AudioSpecificConfig', () => {
    expect(parseAudioSpecificConfig(aac)).toEqual({ sampleRate: 44_100, channels: 2 });
    expect(parseAudioSpecificConfig(Buffer.from([0x11, 0x88]))).toEqual({ sampleRate: 48_000, channels: 1 });
    expect(() => parseAudioSpecificConfig(Buffer.from([0x17, 0x00]))).toThrow(/sampling index 14/);
  });

  it('writes an init segment with both tracks and fragments whose offsets point at their samples', () => {
    const writer = new FragmentedMp4Writer({ avcC, width: 640, height: 360 }, { audioSpecificConfig: aac });
    const init = writer.init();
    expect(boxes(init).map((box) => box.type)).toEqual(['ftyp', 'moov']);
    expect(init.includes(Buffer.from('avcC'))).toBe(true);
    expect(init.includes(Buffer.from('esds'))).toBe(true);
    const pictures = [Buffer.alloc(100, 1), Buffer.alloc(50, 2), Buffer.alloc(60, 3)];
    pictures.forEach((data, i) => writer.addVideo({ dtsMs: i * 40, ctsMs: 0, keyframe: i === 0, data }));
    const sounds = [Buffer.alloc(20, 7), Buffer.alloc(21, 8)];
    sounds.forEach((data, i) => writer.addAudio({ dtsMs: i * 23, data }));
    const fragment = Buffer.concat(writer.fragment(120));
    const [moof, mdat] = boxes(fragment);
    expect([moof!.type, mdat!.type]).toEqual(['moof', 'mdat']);
    expect(mdat!.size).toBe(8 + 210 + 41);
    // Each trun's data offset (from the moof's start) is where its first sample's bytes are.
    const truns = [...fragment.subarray(0, moof!.size).toString('latin1').matchAll(/trun/g)].map((match) => match.index! - 4);
    expect(truns).toHaveLength(2);
    const offsetOf = (trun: number) => fragment.readInt32BE(trun + 16);
    expect(fragment.subarray(offsetOf(truns[0]!), offsetOf(truns[0]!) + 100).equals(pictures[0]!)).toBe(true);
    expect(fragment.subarray(offsetOf(truns[1]!), offsetOf(truns[1]!) + 20).equals(sounds[0]!)).toBe(true);
    // Video durations come from the next picture (the last from the next fragment's first): 40 ms at 90 kHz.
    expect(fragment.readUInt32BE(truns[0]! + 20)).toBe(3600);
    expect(fragment.readUInt32BE(truns[0]! + 20 + 16 * 2)).toBe(3600);
    expect(writer.fragment()).toEqual([]);
  });
});
