import { join } from 'node:path';
import { imageEncoderArgs, imageFilters, type ImageFormat, type PictureFormat } from '../outputs/images/format';

/**
 * The imager's own clock. The decoder gets every picture a chosen one needs (see feed-planner.ts)
 * and must turn only the chosen ones into images; ffmpeg has no per-frame switch for that, so the
 * choice rides on the timestamps we give: twice the timeline (ms since the imager's base) for a
 * chosen picture, plus one for a picture fed only as a reference. `select` keeps the even ones.
 * The image file is named by that time.
 */
export function imagerTime(timelineMs: number, baseMs: number, chosen: boolean): number {
  return 2 * Math.round(timelineMs - baseMs) + (chosen ? 0 : 1);
}

/** The timeline ms of a chosen picture from its imager time. */
export function timelineOfImage(imagerMs: number, baseMs: number): number {
  return baseMs + imagerMs / 2;
}

export const CHOSEN_PICTURES_FILTER = "select='not(mod(pts,2))'";

export interface ImagerPlan {
  format: ImageFormat;
  /** What the decoder will output, from the stream's SPS. */
  picture: PictureFormat;
  width?: number;
  quality?: number;
  /** Where images are written. */
  workDir: string;
  /** The imager's number within the job; part of every file name. */
  run: number;
}

/**
 * Each image is named by its imager time: `r<run>-<ms>.<ext>`. `-copyts` keeps the FLV
 * timestamps we fed, so the name is the time we gave the chosen picture.
 */
export function snapshotFileName(run: number, format: ImageFormat, imagerMs: number | '%d'): string {
  return `r${run}-${imagerMs}.${format}`;
}

/** The run and imager time (ms) in a snapshot file name, or undefined for any other file. */
export function parseSnapshotFileName(name: string, format: ImageFormat): { run: number; ms: number } | undefined {
  const match = new RegExp(`^r(\\d+)-(\\d+)\\.${format}$`).exec(name);
  return match ? { run: Number(match[1]), ms: Number(match[2]) } : undefined;
}

/**
 * The imager: FLV we feed on fd 3 in, images out. Single-threaded decode and encode: one picture
 * at a time gains nothing from threads. It ends when we end its input, after writing every picture
 * its decoder still held — so stopping never interrupts a write.
 */
export function imagerArgs(plan: ImagerPlan): string[] {
  return [
    '-hide_banner', '-nostats', '-loglevel', 'error',
    // What we feed starts with the codec's parameters: nothing to probe for, so no wait.
    '-threads', '1', '-probesize', '32', '-analyzeduration', '0', '-copyts', '-f', 'flv', '-i', 'pipe:3',
    '-map', '0:v:0', '-an',
    '-vf', [CHOSEN_PICTURES_FILTER, ...imageFilters(plan.format, plan.picture, plan.width)].join(','),
    // vfr: write each frame once, never duplicate to fill a rate. The rate only sets a
    // millisecond time base for -frame_pts.
    '-vsync', 'vfr', '-r', '1000',
    ...imageEncoderArgs(plan.format, plan.quality),
    '-f', 'image2', '-frame_pts', '1',
    // Files appear by rename: a name in the directory is a file ffmpeg finished writing.
    '-atomic_writing', '1',
    join(plan.workDir, snapshotFileName(plan.run, plan.format, '%d')),
  ];
}
