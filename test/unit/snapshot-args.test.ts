import { describe, expect, it } from 'vitest';
import { networkInputArgs, supervisedRunArgs } from '../../shared/ffmpeg/args';
import { selectExpression, snapshotFileName, snapshotFilter, snapshotRunArgs, snapshotSlot, streamTimeFromFileName } from '../../shared/snapshot/args';
import { imageEncoderArgs, jpegQscale } from '../../shared/snapshot/image-format';

const plan = {
  sourceUrl: 'rtmp://live.example.com/app/stream',
  mode: 'keyframes' as const,
  intervalSec: 1,
  format: 'jpg' as const,
  ioTimeoutSec: 15,
  workDir: '/tmp/job',
  run: 2,
};

describe('snapshotRunArgs', () => {
  it('decodes keyframes only in keyframe mode and passes the URL as one argument', () => {
    const args = snapshotRunArgs(plan);
    expect(args.slice(args.indexOf('-skip_frame'), args.indexOf('-skip_frame') + 2)).toEqual(['-skip_frame', 'nokey']);
    expect(args.indexOf('-skip_frame')).toBeLessThan(args.indexOf('-i'));
    expect(args[args.indexOf('-i') + 1]).toBe(plan.sourceUrl);
    expect(args.at(-1)).toBe('/tmp/job/r2-%d.jpg');
  });

  it('decodes every frame in full mode', () => {
    expect(snapshotRunArgs({ ...plan, mode: 'all' })).not.toContain('-skip_frame');
  });

  it('restricts ffmpeg to the protocols of the source scheme', () => {
    const whitelistOf = (url: string) => {
      const args = networkInputArgs({ url });
      return args[args.indexOf('-protocol_whitelist') + 1];
    };
    expect(whitelistOf('rtmp://h/a/s')).toBe('rtmp,tcp');
    expect(whitelistOf('rtmps://h/a/s')).toBe('rtmps,rtmp,tls,tcp');
    expect(whitelistOf('https://h/live.m3u8')).toBe('http,https,tls,tcp,crypto');
    for (const url of ['rtmp://h/a/s', 'https://h/x.flv']) expect(whitelistOf(url)).not.toMatch(/file|concat|pipe|data|subfile|udp/);
  });

  it('puts the liveness probe first so -progress counts received packets', () => {
    const args = snapshotRunArgs(plan);
    const probe = args.indexOf('null');
    expect(args.slice(probe - 5, probe + 2)).toEqual(['-map', '0:v:0', '-c', 'copy', '-f', 'null', '-']);
    expect(probe).toBeLessThan(args.indexOf('-vf'));
    expect(args.slice(0, supervisedRunArgs().length)).toEqual(supervisedRunArgs());
  });

  it('writes atomically, named by stream time in ms, without frame duplication', () => {
    const args = snapshotRunArgs(plan);
    expect(args).toEqual(expect.arrayContaining(['-atomic_writing', '1', '-frame_pts', '1']));
    expect(args.slice(args.indexOf('-vsync'), args.indexOf('-vsync') + 4)).toEqual(['-vsync', 'vfr', '-r', '1000']);
  });

  it("reads stream times back from this run's file names only", () => {
    expect(snapshotFileName(2, 'jpg', 10023)).toBe('r2-10023.jpg');
    expect(streamTimeFromFileName('r2-10023.jpg', 2, 'jpg')).toBe(10023);
    expect(streamTimeFromFileName('r2--40.jpg', 2, 'jpg')).toBe(-40);
    for (const other of ['r1-10023.jpg', 'r2-10023.png', 'r2-10023.jpg.tmp', 'r12-5.jpg', 'xr2-5.jpg']) {
      expect(streamTimeFromFileName(other, 2, 'jpg')).toBeUndefined();
    }
  });
});

describe('snapshot filter', () => {
  it('selects on an interval grid and scales keeping the aspect ratio', () => {
    expect(snapshotFilter({ intervalSec: 2, mode: 'all', width: 640 })).toBe(`select='${selectExpression(2, 'all')}',scale=640:-2:flags=bicubic`);
    expect(snapshotFilter({ intervalSec: 2, mode: 'all' })).not.toContain('scale');
  });

  it('anchors the grid at the first selected frame', () => {
    expect(selectExpression(1.5, 'all')).toBe(
      'if(isnan(prev_selected_t),st(0,t)*0+1,gt(floor((t-ld(0))/1.5+0.001),floor((prev_selected_t-ld(0))/1.5+0.001))*gte(t-prev_selected_t,0))',
    );
    expect(selectExpression(2, 'keyframes')).toContain('gte(t-prev_selected_t,1.2)');
  });

  it('mirrors the slot formula in JS', () => {
    expect(snapshotSlot(10.023, 0.023, 1, 'all')).toBe(10);
    expect(snapshotSlot(10.53, 0.023, 1, 'keyframes')).toBe(11);
    expect(snapshotSlot(10.4, 0.023, 1, 'keyframes')).toBe(10);
  });
});

describe('image encoders', () => {
  it('maps quality 1-100 onto mjpeg qscale 31-2', () => {
    expect(jpegQscale(100)).toBe(2);
    expect(jpegQscale(1)).toBe(31);
    expect(imageEncoderArgs('jpg', 100)).toEqual(['-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-sws_flags', 'neighbor', '-q:v', '2']);
    expect(imageEncoderArgs('webp', 70)).toEqual(['-c:v', 'libwebp', '-lossless', '0', '-quality', '70']);
    expect(imageEncoderArgs('png')).toEqual(['-c:v', 'png']);
  });
});
