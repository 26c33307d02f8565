import { protocolWhitelist } from '../source-url';

/**
 * Small pure builders for ffmpeg argument lists. Each returns string[] so the
 * process is spawned without a shell and nothing is ever re-parsed.
 */

/** Machine-readable progress on stdout; stderr carries only errors, for messages. */
export function supervisedRunArgs(): string[] {
  return ['-hide_banner', '-nostats', '-loglevel', 'error', '-progress', 'pipe:1'];
}

export interface NetworkInputOptions {
  url: string;
  /** ffmpeg's own I/O timeout; a backstop for the supervisor's stall detection. */
  ioTimeoutSec?: number;
}

export function networkInputArgs(options: NetworkInputOptions): string[] {
  // The probe ends once every stream the source announces is found; a server that sends video
  // only from the next keyframe (nginx-rtmp) needs up to a GOP for that.
  const args = ['-protocol_whitelist', protocolWhitelist(options.url), '-analyzeduration', '10000000'];
  if (options.ioTimeoutSec !== undefined) args.push('-rw_timeout', String(Math.round(options.ioTimeoutSec * 1_000_000)));
  args.push('-i', options.url);
  return args;
}

/**
 * A stream-copy of the first video stream into the null muxer. Placed as the first
 * output it makes `-progress frame=` count received packets, so the supervisor sees
 * input liveness even while the snapshot output drops most frames.
 */
export function inputLivenessProbeArgs(): string[] {
  return ['-map', '0:v:0', '-c', 'copy', '-f', 'null', '-'];
}
