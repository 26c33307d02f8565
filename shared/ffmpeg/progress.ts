/** One block of `-progress` output, emitted by ffmpeg about twice a second. */
export interface FfmpegProgress {
  /** Frames of the first output's video stream. */
  frame: number;
  outTimeUs?: number;
  speed?: string;
  state: 'continue' | 'end';
}

/**
 * Collects `key=value` lines until the `progress=` line that closes a block.
 * Pure: feed it lines, get a block back when one completes.
 */
export class ProgressParser {
  private fields = new Map<string, string>();

  push(line: string): FfmpegProgress | undefined {
    const eq = line.indexOf('=');
    if (eq <= 0) return undefined;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key !== 'progress') {
      this.fields.set(key, value);
      return undefined;
    }
    const fields = this.fields;
    this.fields = new Map();
    const outTimeUs = Number(fields.get('out_time_us') ?? fields.get('out_time_ms'));
    return {
      frame: Number(fields.get('frame') ?? 0) || 0,
      outTimeUs: Number.isFinite(outTimeUs) ? outTimeUs : undefined,
      speed: fields.get('speed'),
      state: value === 'end' ? 'end' : 'continue',
    };
  }
}
