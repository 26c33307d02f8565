import { describe, expect, it } from 'vitest';
import { ProgressParser } from '../../shared/ffmpeg/progress';

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
