import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { CmafFormatError, CmafSegmenter, SEGMENT_MAX_SEC } from '../../shared/media/cmaf';
import { hlsKeys, mediaPlaylist } from '../../shared/media/hls-playlist';
import { Mp4SegmentReader } from '../../shared/media/mp4-boxes';

/** A fragmented MP4 as the recorder's encoder writes it (its movflags), made by the bundled ffmpeg. */
function fragmentedMp4(seconds: number, video: boolean): Buffer {
  const file = join(mkdtempSync(join(tmpdir(), 'cmaf-')), 'in.mp4');
  const input = video ? ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=15', '-f', 'lavfi', '-i', 'sine=sample_rate=48000'] : ['-f', 'lavfi', '-i', 'sine=sample_rate=48000'];
  const codecs = video
    ? ['-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-preset', 'superfast', '-g', '30', '-force_key_frames', 'expr:gte(t,n_forced*2)', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', '+frag_keyframe+empty_moov+default_base_moof']
    : ['-c:a', 'aac', '-movflags', '+empty_moov+default_base_moof', '-frag_duration', '2000000'];
  execFileSync(resolveFfmpegPath(), ['-v', 'error', ...input, '-t', String(seconds), ...codecs, '-f', 'mp4', '-y', file]);
  return readFileSync(file);
}

function segmentsOf(mp4: Buffer, chunkBytes: number) {
  const reader = new Mp4SegmentReader();
  const segmenter = new CmafSegmenter();
  const out = [];
  for (let at = 0; at < mp4.length; at += chunkBytes) for (const piece of reader.push(mp4.subarray(at, at + chunkBytes))) out.push(...segmenter.push(piece));
  return [...out, ...segmenter.flush()];
}

describe('CmafSegmenter', () => {
  it.each([
    [true, 'H.264 + AAC, a fragment per 2 s keyframe'],
    [false, 'AAC alone, a fragment every 2 s'],
  ])('cuts about 4 s segments, timed by the fragments, whole however the stream is chunked (video: %s, %s)', (video) => {
    const mp4 = fragmentedMp4(11, video);
    const segments = segmentsOf(mp4, 1000);
    expect(segments[0]!.kind).toBe('init');
    const durations = segments.slice(1).map((segment) => Number(segment.durationSec.toFixed(2)));
    // 4 + 4 + 3: the last one is what is left at the end.
    expect(durations.length).toBe(3);
    for (const duration of durations.slice(0, -1)) expect(Math.abs(duration - 4)).toBeLessThan(0.05);
    expect(durations.reduce((sum, duration) => sum + duration, 0)).toBeCloseTo(11, 1);
    for (const duration of durations) expect(duration).toBeLessThanOrEqual(SEGMENT_MAX_SEC);
    // Nothing dropped or repeated: the pieces are the stream, in order (up to the index a file gets at its end).
    const pieces = Buffer.concat(segments.map((segment) => segment.bytes));
    expect(pieces.equals(mp4.subarray(0, pieces.length))).toBe(true);
    expect(mp4.toString('latin1', pieces.length + 4, pieces.length + 8)).toBe('mfra');
    expect(segmentsOf(mp4, 64 * 1024).map((segment) => segment.durationSec)).toEqual(segments.map((segment) => segment.durationSec));
  });

  it('refuses a fragment before the init segment', () => {
    const mp4 = fragmentedMp4(3, false);
    const [, fragment] = new Mp4SegmentReader().push(mp4);
    expect(() => new CmafSegmenter().push(fragment!)).toThrow(CmafFormatError);
  });
});

describe('mediaPlaylist', () => {
  it('lists segments as an EVENT playlist, ENDLIST once ended', () => {
    const segments = [
      { sequence: 0, durationSec: 4.021 },
      { sequence: 1, durationSec: 2.5 },
    ];
    expect(mediaPlaylist(segments, false)).toBe(
      [
        '#EXTM3U',
        '#EXT-X-VERSION:7',
        '#EXT-X-TARGETDURATION:6',
        '#EXT-X-MEDIA-SEQUENCE:0',
        '#EXT-X-PLAYLIST-TYPE:EVENT',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-MAP:URI="init.mp4"',
        '#EXTINF:4.021,',
        'seg-000000.m4s',
        '#EXTINF:2.500,',
        'seg-000001.m4s',
        '',
      ].join('\n'),
    );
    expect(mediaPlaylist(segments, true).endsWith('seg-000001.m4s\n#EXT-X-ENDLIST\n')).toBe(true);
    expect(hlsKeys('rec/a/')).toMatchObject({ playlist: 'rec/a/index.m3u8', init: 'rec/a/init.mp4' });
    expect(hlsKeys('rec/a/').segment(123456)).toBe('rec/a/seg-123456.m4s');
  });
});
