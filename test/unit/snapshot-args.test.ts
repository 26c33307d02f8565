import { describe, expect, it } from 'vitest';
import { networkInputArgs } from '../../shared/ffmpeg/args';
import { imageEncoderArgs, imageFilters, jpegQscale, VIDEO_TO_FULL_RANGE_FILTER } from '../../shared/outputs/images/format';
import {
  imagerArgs,
  imagerFilter,
  KeyframeSelector,
  parseSnapshotFileName,
  selectExpression,
  snapshotFileName,
  snapshotSlot,
  type ImagerPlan,
} from '../../shared/snapshot/args';
import { describeSourceFailure, streamPullArgs, type StreamPullExit } from '../../shared/sources/stream-pull';

const plan: ImagerPlan = {
  mode: 'keyframes',
  intervalSec: 1,
  anchorSec: 0.067,
  format: 'jpg',
  workDir: '/tmp/job',
  run: 2,
};

describe('streamPullArgs', () => {
  it('remuxes the video to FLV on fd 3, flushing every packet, after a null output that counts every packet received', () => {
    const url = 'rtmp://live.example.com/app/stream?auth_key=x y';
    const args = streamPullArgs({ url, ioTimeoutSec: 15, keyframesOnly: false });
    expect(args[args.indexOf('-i') + 1]).toBe(url);
    expect(args.slice(args.indexOf('-i') + 2)).toEqual([
      '-map', '0:v:0', '-c', 'copy', '-f', 'null', '-',
      '-map', '0:v:0', '-c', 'copy', '-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:3',
    ]);
    expect(args).not.toContain('-skip_frame');
    expect(args.slice(args.indexOf('-rw_timeout'), args.indexOf('-rw_timeout') + 2)).toEqual(['-rw_timeout', '15000000']);
  });

  it('passes IDR pictures only when keyframes are all that is needed', () => {
    const args = streamPullArgs({ url: 'rtmp://h/a/s', ioTimeoutSec: 15, keyframesOnly: true });
    expect(args.slice(args.indexOf('-bsf:v'), args.indexOf('-bsf:v') + 2)).toEqual(['-bsf:v', 'filter_units=remove_types=1-4']);
    // On the relayed output, not on the null output that counts packets.
    expect(args.indexOf('-bsf:v')).toBeGreaterThan(args.indexOf('null'));
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
});

describe('describeSourceFailure', () => {
  const exit = (over: Partial<StreamPullExit>): StreamPullExit => ({ code: 1, signal: null, escalation: 'none', frames: 0, stderrTail: [], packets: 0, ...over });
  it('says what happened in words a user can act on', () => {
    expect(describeSourceFailure(exit({ stderrTail: ['[tcp @ 0x1] Connection to tcp://127.0.0.1:1935 failed: Connection refused'] }), 30)).toBe(
      'nothing is listening at 127.0.0.1:1935 (connection refused)',
    );
    expect(describeSourceFailure(exit({ stopCause: 'no-first-frame', code: null, signal: 'SIGKILL' }), 30)).toBe(
      'connected, but no video arrived within connect_timeout (30 s): nothing is being published at this URL',
    );
    expect(describeSourceFailure(exit({ stderrTail: ['http://h/x.flv: Server returned 404 Not Found'] }), 30)).toMatch(/nothing is being published/);
    expect(describeSourceFailure(exit({ stderrTail: ['Server error: Stream not found'] }), 30)).toMatch(/nothing is being published/);
    expect(describeSourceFailure(exit({ unusable: 'not H.264' }), 30)).toBe('not H.264');
  });
});

describe('imagerArgs', () => {
  it('reads FLV we feed on fd 3, keeps its timestamps, and names each image by its pts in ms', () => {
    const args = imagerArgs(plan);
    expect(args.slice(args.indexOf('-probesize'), args.indexOf('-i') + 2)).toEqual(['-probesize', '32', '-analyzeduration', '0', '-copyts', '-f', 'flv', '-i', 'pipe:3']);
    expect(args).toEqual(expect.arrayContaining(['-atomic_writing', '1', '-frame_pts', '1']));
    expect(args.slice(args.indexOf('-vsync'), args.indexOf('-vsync') + 4)).toEqual(['-vsync', 'vfr', '-r', '1000']);
    expect(args.at(-1)).toBe('/tmp/job/r2-%d.jpg');
    // Decoder single-threaded, before the input.
    expect(args.indexOf('-threads')).toBeLessThan(args.indexOf('-i'));
  });

  it('selects nothing itself when fed chosen keyframes; selects on the grid when decoding everything', () => {
    expect(imagerFilter(plan)).toBe(VIDEO_TO_FULL_RANGE_FILTER);
    expect(imagerFilter({ ...plan, format: 'png' })).toBeUndefined();
    expect(imagerFilter({ ...plan, mode: 'all', width: 640 })).toBe(
      `select='${selectExpression(1, 0.067)}',scale=640:-2:flags=bicubic,${VIDEO_TO_FULL_RANGE_FILTER}`,
    );
  });

  it('decoding every frame, takes the first frame of each slot of the grid anchored at the connection\'s first frame', () => {
    expect(selectExpression(1.5, 2)).toBe('if(isnan(prev_selected_t),1,gt(floor((t-2)/1.5+0.001),floor((prev_selected_t-2)/1.5+0.001)))');
  });

  it("reads run and stream time back from snapshot file names only", () => {
    expect(snapshotFileName(2, 'jpg', 10023)).toBe('r2-10023.jpg');
    expect(parseSnapshotFileName('r2-10023.jpg', 'jpg')).toEqual({ run: 2, ms: 10023 });
    expect(parseSnapshotFileName('r12--40.jpg', 'jpg')).toEqual({ run: 12, ms: -40 });
    for (const other of ['r2-10023.png', 'r2-10023.jpg.tmp', 'xr2-5.jpg', 'owner.json', 'runs.jsonl']) {
      expect(parseSnapshotFileName(other, 'jpg')).toBeUndefined();
    }
  });
});

describe('KeyframeSelector', () => {
  it('takes one keyframe per slot of the grid anchored at the first', () => {
    const selector = new KeyframeSelector(1, 67);
    const taken = [67, 1067, 2067, 2567, 3067, 4100, 4600].filter((pts) => selector.offer(pts).take);
    expect(taken).toEqual([67, 1067, 2067, 3067, 4100]);
  });

  it('takes every other keyframe when they come twice per interval', () => {
    const selector = new KeyframeSelector(2, 0);
    expect([0, 1000, 2000, 3000, 4000, 5000, 6000].filter((pts) => selector.offer(pts).take)).toEqual([0, 2000, 4000, 6000]);
  });

  it('reports the slots missed when keyframes are sparser than the interval', () => {
    const selector = new KeyframeSelector(1, 0);
    expect(selector.offer(0).missedSlots).toBe(0);
    expect(selector.offer(4000)).toEqual({ take: true, slot: 4, missedSlots: 3 });
  });

  it('mirrors the slot formula used to name images', () => {
    expect(snapshotSlot(10.023, 0.023, 1, 'all')).toBe(10);
    expect(snapshotSlot(10.53, 0.023, 1, 'keyframes')).toBe(11);
    expect(snapshotSlot(10.4, 0.023, 1, 'keyframes')).toBe(10);
  });
});

describe('image encoders', () => {
  it('maps quality 1-100 onto mjpeg qscale 31-2, single-threaded, full-range JFIF without swscale', () => {
    expect(jpegQscale(100)).toBe(2);
    expect(jpegQscale(1)).toBe(31);
    expect(imageEncoderArgs('jpg', 100)).toEqual(['-threads', '1', '-c:v', 'mjpeg', '-strict', '-1', '-pix_fmt', 'yuv420p', '-color_range', 'jpeg', '-q:v', '2']);
    expect(imageFilters('jpg')).toEqual([VIDEO_TO_FULL_RANGE_FILTER]);
    expect(imageEncoderArgs('webp', 70)).toEqual(['-threads', '1', '-c:v', 'libwebp', '-lossless', '0', '-quality', '70']);
    expect(imageEncoderArgs('png')).toEqual(['-threads', '1', '-c:v', 'png']);
    expect(imageFilters('png')).toEqual([]);
  });
});
