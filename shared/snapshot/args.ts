import { inputLivenessProbeArgs, networkInputArgs, supervisedRunArgs } from '../ffmpeg/args';
import { join } from 'node:path';
import { imageEncoderArgs, type ImageFormat } from './image-format';

export type DecodeMode = 'keyframes' | 'all';

/**
 * Snapshot slots are an interval grid anchored at the first selected frame, so the
 * cadence never drifts. In keyframe mode the grid is shifted half a slot, so
 * keyframes that jitter around the interval still land one per slot, and a minimum
 * gap keeps a keyframe at a slot's early edge from being taken when a better one
 * follows. In full-decode mode the first frame of each slot is taken.
 * `snapshotSlot` mirrors the formula.
 */
export function slotPhase(mode: DecodeMode): number {
  return mode === 'keyframes' ? 0.5 : 0.001;
}

function minGapFraction(mode: DecodeMode): number {
  return mode === 'keyframes' ? 0.6 : 0;
}

export function snapshotSlot(streamTime: number, firstStreamTime: number, intervalSec: number, mode: DecodeMode): number {
  return Math.floor((streamTime - firstStreamTime) / intervalSec + slotPhase(mode));
}

/** ffmpeg `select` expression picking the first frame of each new slot. Register 0 holds the anchor. */
export function selectExpression(intervalSec: number, mode: DecodeMode): string {
  const slot = (time: string) => `floor((${time}-ld(0))/${intervalSec}+${slotPhase(mode)})`;
  const minGap = Number((intervalSec * minGapFraction(mode)).toFixed(6));
  return `if(isnan(prev_selected_t),st(0,t)*0+1,gt(${slot('t')},${slot('prev_selected_t')})*gte(t-prev_selected_t,${minGap}))`;
}

export function snapshotFilter(options: { intervalSec: number; mode: DecodeMode; width?: number }): string {
  const filters = [`select='${selectExpression(options.intervalSec, options.mode)}'`];
  // -2 keeps the aspect ratio with an even height, which every encoder accepts. Explicit
  // flags keep a real resampler here; only the 1:1 range conversion uses -sws_flags.
  if (options.width !== undefined) filters.push(`scale=${options.width}:-2:flags=bicubic`);
  return filters.join(',');
}

export interface SnapshotRunPlan {
  sourceUrl: string;
  mode: DecodeMode;
  intervalSec: number;
  format: ImageFormat;
  width?: number;
  quality?: number;
  ioTimeoutSec: number;
  /** Where this run writes its images. */
  workDir: string;
  /** Connection number within the job; part of every file name. */
  run: number;
}

/**
 * Each image is named by its stream time in milliseconds (`-frame_pts` with a 1/1000
 * time base), so the name alone says when the frame was: `r<run>-<ms>.<ext>`.
 */
export function snapshotFileName(run: number, format: ImageFormat, streamTimeMs: number | '%d'): string {
  return `r${run}-${streamTimeMs}.${format}`;
}

/** The stream time (ms) in a snapshot file name of this run, or undefined for any other file. */
export function streamTimeFromFileName(name: string, run: number, format: ImageFormat): number | undefined {
  const match = new RegExp(`^r${run}-(-?\\d+)\\.${format}$`).exec(name);
  return match ? Number(match[1]) : undefined;
}

/**
 * Note on keyframe mode: with B-frames in the source, h264's reorder queue holds back
 * `num_reorder_frames` (usually 2) decoded keyframes; skip_frame does not shrink it, and
 * ffmpeg 4.1 has no option that does. Those snapshots arrive late, not lost: ffmpeg
 * flushes the decoder on every stop, and the keys follow stream time, not arrival time.
 */
export function snapshotRunArgs(plan: SnapshotRunPlan): string[] {
  return [
    ...supervisedRunArgs(),
    ...networkInputArgs({ url: plan.sourceUrl, keyframesOnly: plan.mode === 'keyframes', ioTimeoutSec: plan.ioTimeoutSec }),
    ...inputLivenessProbeArgs(),
    '-map', '0:v:0', '-an',
    '-vf', snapshotFilter({ intervalSec: plan.intervalSec, mode: plan.mode, width: plan.width }),
    // vfr: write each selected frame once, never duplicate to fill a rate. The rate only
    // sets a millisecond time base for -frame_pts.
    '-vsync', 'vfr', '-r', '1000',
    ...imageEncoderArgs(plan.format, plan.quality),
    '-f', 'image2', '-frame_pts', '1',
    // Files appear by rename, so any file the watcher sees is complete.
    '-atomic_writing', '1',
    join(plan.workDir, snapshotFileName(plan.run, plan.format, '%d')),
  ];
}
