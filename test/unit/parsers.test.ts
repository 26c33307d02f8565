import { describe, expect, it } from 'vitest';
import { ProgressParser } from '../../shared/ffmpeg/progress';
import { parseSnapshotInfo } from '../../shared/snapshot/showinfo';

describe('ProgressParser', () => {
  it('emits one block per progress= line', () => {
    const parser = new ProgressParser();
    const lines = ['frame=300', 'fps=0.00', 'out_time_us=11904000', 'speed= 316x', 'progress=continue', 'frame=301', 'progress=end'];
    const blocks = lines.map((line) => parser.push(line)).filter(Boolean);
    expect(blocks).toEqual([
      { frame: 300, outTimeUs: 11904000, speed: '316x', state: 'continue' },
      { frame: 301, outTimeUs: undefined, speed: undefined, state: 'end' },
    ]);
  });
});

describe('parseSnapshotInfo', () => {
  it('reads index and stream time from the snapshot showinfo instance only', () => {
    const line = '[showinfo@snap @ 0x15f42940] n:  12 pts:  10023 pts_time:10.023  pos:   985938 fmt:yuv420p sar:1/1 s:640x360 i:P iskey:1';
    expect(parseSnapshotInfo(line)).toEqual({ index: 12, streamTime: 10.023 });
    expect(parseSnapshotInfo('[Parsed_showinfo_1 @ 0x1] n: 1 pts: 1 pts_time:1')).toBeUndefined();
    expect(parseSnapshotInfo('[showinfo@snap @ 0x1] config in time_base: 1/1000')).toBeUndefined();
  });
});
