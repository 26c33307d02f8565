import { describe, expect, it } from 'vitest';
import { finalizeArgs, modeTracks, recordingArgs, recordingPipes } from '../../shared/recording/args';
import { blackI420, convertPcm, i420Size, scaleI420 } from '../../shared/media/raw-media';
import { safeSegment } from '../../shared/naming';

describe('recording arguments', () => {
  it('reads video from pipe 3 and audio from pipe 4, encoding H.264 + AAC into FLV', () => {
    const args = recordingArgs({ video: { width: 640, height: 360, fps: 15 }, audio: { sampleRate: 48000, channels: 2 }, outputPath: '/w/alice.flv' });
    expect(args.join(' ')).toContain('-f rawvideo -pix_fmt yuv420p -video_size 640x360 -framerate 15 -i pipe:3');
    expect(args.join(' ')).toContain('-f s16le -ar 48000 -ac 2 -i pipe:4');
    expect(args.join(' ')).toContain('-map 0:v -c:v libx264');
    expect(args.join(' ')).toContain('-map 1:a -c:a aac');
    expect(args.slice(-4)).toEqual(['-f', 'flv', '-y', '/w/alice.flv']);
  });

  it('records audio-only as MP3 in FLV, so finalising to .mp3 is a copy', () => {
    const args = recordingArgs({ audio: { sampleRate: 48000, channels: 1 }, outputPath: '/w/a.flv' });
    expect(args.join(' ')).toContain('-i pipe:3');
    expect(args.join(' ')).toContain('-map 0:a -c:a libmp3lame');
    expect(args).not.toContain('libx264');
  });

  it('maps modes to tracks and pipes', () => {
    expect(modeTracks('00')).toEqual({ audio: true, video: false });
    expect(modeTracks('01')).toEqual({ audio: false, video: true });
    expect(recordingPipes(modeTracks('02'))).toEqual({ video: 3, audio: 4 });
    expect(recordingPipes(modeTracks('00'))).toEqual({ audio: 3 });
  });

  it('finalises by stream copy, with faststart on disk or fragmented to a pipe', () => {
    expect(finalizeArgs({ inputPath: 'a.flv', mode: '02', output: 'a.mp4' })).toEqual(
      expect.arrayContaining(['-c', 'copy', '-movflags', '+faststart', '-f', 'mp4']),
    );
    expect(finalizeArgs({ inputPath: 'a.flv', mode: '01', output: 'pipe:3', fragmented: true })).toEqual(
      expect.arrayContaining(['-movflags', '+frag_keyframe+empty_moov+default_base_moof', 'pipe:3']),
    );
    const mp3 = finalizeArgs({ inputPath: 'a.flv', mode: '00', output: 'pipe:3' });
    expect(mp3.slice(-4)).toEqual(['-f', 'mp3', '-y', 'pipe:3']);
    expect(mp3).not.toContain('-movflags');
  });
});

describe('raw media helpers', () => {
  it('makes video-range black I420 of the right size', () => {
    const frame = blackI420(4, 2);
    expect(frame.length).toBe(i420Size(4, 2));
    expect([...frame]).toEqual([16, 16, 16, 16, 16, 16, 16, 16, 128, 128, 128, 128]);
  });

  it('scales I420 by nearest neighbour, plane by plane', () => {
    const src = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, /* U */ 9, 10, /* V */ 11, 12]); // 4x2
    const out = scaleI420(src, 4, 2, 2, 2);
    expect([...out]).toEqual([1, 3, 5, 7, 9, 11]);
    expect(scaleI420(src, 4, 2, 8, 4).length).toBe(i420Size(8, 4));
  });

  it('converts PCM between channel counts and rates', () => {
    const stereo = Buffer.alloc(8);
    stereo.writeInt16LE(100, 0);
    stereo.writeInt16LE(300, 2);
    stereo.writeInt16LE(-100, 4);
    stereo.writeInt16LE(-300, 6);
    const mono = convertPcm(stereo, { sampleRate: 48000, channels: 2 }, { sampleRate: 48000, channels: 1 });
    expect([mono.readInt16LE(0), mono.readInt16LE(2)]).toEqual([200, -200]);
    const tone = Buffer.alloc(16000 * 2);
    expect(convertPcm(tone, { sampleRate: 16000, channels: 1 }, { sampleRate: 48000, channels: 2 }).length).toBe(48000 * 2 * 2);
  });
});

describe('object key segments', () => {
  it('keep ids readable and safe', () => {
    expect(safeSegment('alice_01')).toBe('alice_01');
    expect(safeSegment('a/b c')).toBe('a%2Fb%20c');
    expect(safeSegment('..')).toBe('%2E.');
  });
});
