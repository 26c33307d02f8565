import { describe, expect, it } from 'vitest';
import { networkInputArgs } from '../../shared/ffmpeg/args';
import { imageEncoderArgs, imageFilters, jpegQscale, VIDEO_TO_FULL_RANGE_FILTER } from '../../shared/outputs/images/format';
import { CHOSEN_PICTURES_FILTER, imagerArgs, imagerTime, parseSnapshotFileName, snapshotFileName, timelineOfImage, type ImagerPlan } from '../../shared/snapshot/args';
import { streamPullArgs } from '../../shared/sources/stream-pull';

const plan: ImagerPlan = { format: 'jpg', picture: { chromaFormat: 1, bitDepth: 8, fullRange: false }, workDir: '/tmp/job', run: 2 };

describe('streamPullArgs', () => {
  it('remuxes the video to FLV on fd 3, flushing every packet, after a null output that counts every packet received', () => {
    const url = 'http://127.0.0.1:4000/token/1/live.m3u8';
    const args = streamPullArgs({ url, ioTimeoutSec: 15 });
    expect(args[args.indexOf('-i') + 1]).toBe(url);
    expect(args.slice(args.indexOf('-i') + 2)).toEqual([
      '-map', '0:v:0', '-c', 'copy', '-f', 'null', '-',
      '-map', '0:v:0', '-c', 'copy', '-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:3',
    ]);
    expect(args.slice(args.indexOf('-rw_timeout'), args.indexOf('-rw_timeout') + 2)).toEqual(['-rw_timeout', '15000000']);
    expect(args).not.toContain('-bsf:v');
  });

  it('relays the first audio stream too when asked (a recording), as FLV holds AAC, and copes without one', () => {
    const args = streamPullArgs({ url: 'http://127.0.0.1:4000/live.m3u8', ioTimeoutSec: 15, withAudio: true });
    expect(args.slice(args.lastIndexOf('-map') - 2, args.indexOf('pipe:3') + 1)).toEqual([
      '-map', '0:v:0', '-map', '0:a:0?', '-c', 'copy', '-bsf:a', 'aac_adtstoasc', '-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:3',
    ]);
  });

  it("reads RTMP through the loopback forwarder as live_flv, telling the server the source's own tcUrl", () => {
    const args = streamPullArgs({ url: 'rtmp://127.0.0.1:5000/live/s?k=1', rtmpTcUrl: 'rtmp://live.example.com/live', ioTimeoutSec: 15 });
    expect(args.slice(args.indexOf('-rtmp_tcurl'), args.indexOf('-i') + 2)).toEqual(
      ['-rtmp_tcurl', 'rtmp://live.example.com/live', '-f', 'live_flv', '-protocol_whitelist', 'rtmp,tcp', '-analyzeduration', '10000000', '-rw_timeout', '15000000', '-i', 'rtmp://127.0.0.1:5000/live/s?k=1'],
    );
  });

  it('lets ffmpeg open only what a loopback input needs: never TLS, files, pipes or other hosts', () => {
    const whitelistOf = (url: string) => {
      const args = networkInputArgs({ url });
      return args[args.indexOf('-protocol_whitelist') + 1];
    };
    expect(whitelistOf('rtmp://127.0.0.1:1/a/s')).toBe('rtmp,tcp');
    expect(whitelistOf('http://127.0.0.1:1/t/0/live.m3u8')).toBe('http,tcp,crypto');
    for (const url of ['rtmp://127.0.0.1:1/a/s', 'http://127.0.0.1:1/x.m3u8']) expect(whitelistOf(url)).not.toMatch(/file|concat|pipe|data|subfile|udp|tls|https/);
  });
});

describe('imagerArgs', () => {
  it('reads FLV we feed on fd 3, keeps its timestamps, and names each image by its imager time', () => {
    const args = imagerArgs(plan);
    expect(args.slice(args.indexOf('-probesize'), args.indexOf('-i') + 2)).toEqual(['-probesize', '32', '-analyzeduration', '0', '-copyts', '-f', 'flv', '-i', 'pipe:3']);
    expect(args).toEqual(expect.arrayContaining(['-atomic_writing', '1', '-frame_pts', '1']));
    expect(args.slice(args.indexOf('-vsync'), args.indexOf('-vsync') + 4)).toEqual(['-vsync', 'vfr', '-r', '1000']);
    expect(args.at(-1)).toBe('/tmp/job/r2-%d.jpg');
    // Decoder single-threaded, before the input.
    expect(args.indexOf('-threads')).toBeLessThan(args.indexOf('-i'));
  });

  it('keeps only the chosen pictures, then converts them for the encoder', () => {
    const args = imagerArgs({ ...plan, width: 640 });
    expect(args[args.indexOf('-vf') + 1]).toBe(`${CHOSEN_PICTURES_FILTER},scale=w=640:h=-2:flags=bicubic,${VIDEO_TO_FULL_RANGE_FILTER}`);
  });

  it('marks chosen pictures by even imager times and reference pictures by odd ones, and maps them back', () => {
    expect(imagerTime(10_500, 10_000, true)).toBe(1000);
    expect(imagerTime(10_500, 10_000, false)).toBe(1001);
    expect(timelineOfImage(1000, 10_000)).toBe(10_500);
  });

  it('reads run and imager time back from snapshot file names only', () => {
    expect(snapshotFileName(2, 'jpg', 10024)).toBe('r2-10024.jpg');
    expect(parseSnapshotFileName('r2-10024.jpg', 'jpg')).toEqual({ run: 2, ms: 10024 });
    for (const other of ['r2-10023.png', 'r2-10023.jpg.tmp', 'xr2-5.jpg', 'r2--4.jpg', 'owner.json', 'runs.jsonl']) {
      expect(parseSnapshotFileName(other, 'jpg')).toBeUndefined();
    }
  });
});

describe('imageFilters', () => {
  it('costs a lookup table for the common stream (8-bit 4:2:0, BT.601, video range) and nothing more', () => {
    expect(imageFilters('jpg')).toEqual([VIDEO_TO_FULL_RANGE_FILTER]);
    expect(imageFilters('jpg', { chromaFormat: 1, bitDepth: 8, fullRange: false, matrix: 6 })).toEqual([VIDEO_TO_FULL_RANGE_FILTER]);
    expect(imageFilters('webp')).toEqual([]);
  });

  it('converts 10-bit, 4:4:4 and full-range pictures through swscale with range spelled out, never reading them as 8-bit video range', () => {
    expect(imageFilters('jpg', { chromaFormat: 1, bitDepth: 10, fullRange: false })).toEqual(['scale=in_range=tv:out_range=pc', 'format=yuv420p']);
    expect(imageFilters('jpg', { chromaFormat: 3, bitDepth: 8, fullRange: true })).toEqual(['scale=in_range=pc:out_range=pc', 'format=yuv420p']);
    expect(imageFilters('webp', { chromaFormat: 1, bitDepth: 8, fullRange: true }, 320)).toEqual(['scale=w=320:h=-2:flags=bicubic:in_range=pc:out_range=tv', 'format=yuv420p']);
  });

  it('goes through RGB for another matrix (swscale converts matrices only to and from RGB)', () => {
    expect(imageFilters('jpg', { chromaFormat: 1, bitDepth: 8, fullRange: false, matrix: 1 })).toEqual([
      'scale=in_color_matrix=bt709:in_range=tv', 'format=rgb24', 'scale=out_color_matrix=bt601:out_range=pc', 'format=yuv420p',
    ]);
    expect(imageFilters('png', { chromaFormat: 1, bitDepth: 8, fullRange: false, matrix: 1 })).toEqual(['scale=in_color_matrix=bt709:in_range=tv', 'format=rgb24']);
    expect(imageFilters('png')).toEqual(['scale=in_color_matrix=bt601:in_range=tv', 'format=rgb24']);
  });
});

describe('image encoders', () => {
  it('maps quality 1-100 onto mjpeg qscale 31-2, single-threaded, full-range JFIF without swscale', () => {
    expect(jpegQscale(100)).toBe(2);
    expect(jpegQscale(1)).toBe(31);
    expect(imageEncoderArgs('jpg', 100)).toEqual(['-threads', '1', '-c:v', 'mjpeg', '-strict', '-1', '-pix_fmt', 'yuv420p', '-color_range', 'jpeg', '-q:v', '2']);
    expect(imageEncoderArgs('webp', 70)).toEqual(['-threads', '1', '-c:v', 'libwebp', '-lossless', '0', '-quality', '70']);
    expect(imageEncoderArgs('png')).toEqual(['-threads', '1', '-c:v', 'png']);
  });
});
