import { SNAPSHOT_SHOWINFO } from './args';

const FRAME_LINE = /\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[\d.]+)/;
const TAG = `[${SNAPSHOT_SHOWINFO} @`;

/** Parses the showinfo line ffmpeg logs for each selected frame: its index and stream time. */
export function parseSnapshotInfo(line: string): { index: number; streamTime: number } | undefined {
  if (!line.startsWith(TAG)) return undefined;
  const match = FRAME_LINE.exec(line);
  if (!match) return undefined;
  return { index: Number(match[1]), streamTime: Number(match[3]) };
}
