import { describe, expect, it } from 'vitest';
import { VIDEO_TO_FULL_RANGE_FILTER, imageEncoderArgs } from '../../shared/outputs/images/format';
import { ANCHOR_X264_PRESET, modeTracks, recordingArgs, recordingPipes } from '../../shared/outputs/recording/encoder-args';
import { blackI420, convertPcm, i420Size, scaleI420 } from '../../shared/media/raw-media';
import { safeSegment } from '../../shared/naming';

describe('recording arguments', () => {
  it('reads timestamped pictures from pipe 3 and audio from pipe 4, and writes fragmented MP4 (H.264 + AAC, a keyframe every 2 s of time) to pipe 5', () => {
    const args = recordingArgs({ video: { width: 640, height: 360, fps: 15 }, audio: { sampleRate: 48000, channels: 2 }, container: 'mp4' });
    // Not probed: ffmpeg would read seconds of pictures before it reads any audio.
    expect(args.join(' ')).toContain('-analyzeduration 0 -probesize 32 -f matroska -i pipe:3');
    expect(args.join(' ')).toContain('-f s16le -ar 48000 -ac 2 -i pipe:4');
    expect(args.join(' ')).toContain(`-map 0:v -c:v libx264 -preset ${ANCHOR_X264_PRESET} -tune zerolatency`);
    expect(args.join(' ')).toContain('-vsync vfr -g 30 -force_key_frames expr:gte(t,n_forced*2)');
    expect(args.join(' ')).toContain('-map 1:a -c:a aac');
    // A fragment per keyframe, and none over 2 s even without keyframes (an anchor away).
    expect(args.slice(-7)).toEqual(['-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof+skip_trailer', '-frag_duration', '2000000', 'pipe:5']);
  });

  it('records audio-only as bare MP3 frames: no ID3 or Xing header stating totals of a growing file', () => {
    const args = recordingArgs({ audio: { sampleRate: 48000, channels: 1 }, container: 'mp3' });
    expect(args.join(' ')).toContain('-i pipe:3');
    expect(args.join(' ')).toContain('-map 0:a -c:a libmp3lame');
    expect(args.slice(-7)).toEqual(['-f', 'mp3', '-write_xing', '0', '-id3v2_version', '0', 'pipe:4']);
    expect(args).not.toContain('libx264');
  });

  it('records audio-only AAC as fragmented MP4 (for HLS or an MP4 file): a fragment every 2 s, there being no keyframes', () => {
    const args = recordingArgs({ audio: { sampleRate: 48000, channels: 1 }, container: 'mp4' });
    expect(args.join(' ')).toContain('-map 0:a -c:a aac');
    expect(args.slice(-7)).toEqual(['-f', 'mp4', '-movflags', '+empty_moov+default_base_moof+skip_trailer', '-frag_duration', '2000000', 'pipe:4']);
    expect(() => recordingArgs({ video: { width: 640, height: 360, fps: 15 }, container: 'mp3' })).toThrow(/audio alone/);
  });

  it('takes snapshots from the pictures being encoded, with the image pipeline of the snapshot function', () => {
    const args = recordingArgs({ video: { width: 640, height: 360, fps: 15 }, container: 'mp4', snapshots: { intervalSec: 5, outputPattern: '/w/s/p0-%d.jpg' } });
    const second = args.lastIndexOf('-map');
    expect(args.slice(second, second + 4)).toEqual(['-map', '0:v', '-vf', `select='isnan(prev_selected_t)+gte(t-prev_selected_t,5)',${VIDEO_TO_FULL_RANGE_FILTER}`]);
    expect(args.slice(second)).toEqual(expect.arrayContaining([...imageEncoderArgs('jpg'), '-frame_pts', '1', '-atomic_writing', '1']));
    expect(args.at(-1)).toBe('/w/s/p0-%d.jpg');
    // Audio only: nothing to take pictures of.
    expect(recordingArgs({ audio: { sampleRate: 48000, channels: 1 }, container: 'mp3', snapshots: { intervalSec: 5, outputPattern: 'x' } })).not.toContain('image2');
  });

  it('maps modes to tracks and pipes', () => {
    expect(modeTracks('00')).toEqual({ audio: true, video: false });
    expect(modeTracks('01')).toEqual({ audio: false, video: true });
    expect(recordingPipes(modeTracks('02'))).toEqual({ video: 3, audio: 4, output: 5 });
    expect(recordingPipes(modeTracks('00'))).toEqual({ audio: 3, output: 4 });
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
