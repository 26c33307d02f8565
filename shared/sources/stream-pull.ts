import { inputLivenessProbeArgs, networkInputArgs, supervisedRunArgs } from '../ffmpeg/args';
import { FfmpegProcess, type FfmpegExit } from '../ffmpeg/supervisor';
import { FlvFormatError, FlvTagReader, FLV_TAG_VIDEO, isAvc, videoTagInfo, type FlvTag, type VideoTagInfo } from '../media/flv';

/**
 * The network source of the snapshot function: one ffmpeg pulls the live stream and remuxes its
 * video, untouched, to FLV on a pipe; Node cuts that into whole tags. Decoding happens elsewhere
 * (the imager), fed by us — so stopping never has to interrupt a process that is writing images,
 * and this reader can be killed at once: everything it delivered is already in our hands.
 */

export interface StreamPullOptions {
  ffmpegPath: string;
  url: string;
  /** ffmpeg's own I/O timeout; a backstop for the liveness watchdog. */
  ioTimeoutSec: number;
  /** Deliver IDR keyframes only (see streamPullArgs). */
  keyframesOnly: boolean;
  /** Before the first packet: give up after firstPacketTimeoutMs; after it: when none came for stallTimeoutMs. */
  liveness: { firstFrameTimeoutMs: number; stallTimeoutMs: number };
  env?: Record<string, string>;
  /** The FLV file header (with the first previous-tag-size), once. */
  onHeader(header: Buffer): void;
  /** Each whole video tag, with what it says about itself. */
  onVideoTag(tag: FlvTag, info: VideoTagInfo): void;
}

export interface StreamPullExit extends FfmpegExit {
  /** Set when the stream could not be used as delivered (not FLV, not H.264). */
  unusable?: string;
  /** Video packets received (passed on or not). */
  packets: number;
}

/**
 * Pull, remux, no decode: the video stream as FLV on fd 3, every packet flushed as it comes.
 * `keyframesOnly` strips every slice that is not part of an IDR picture (NAL types 1–4), so the
 * packets in between shrink to nothing and are not written: we then relay a few keyframes a
 * second instead of the whole bitrate, which cost Node more than everything else it does. The
 * null output comes first so that `-progress frame=` still counts every packet received
 * (liveness), not only the keyframes passed on.
 */
export function streamPullArgs(options: { url: string; ioTimeoutSec: number; keyframesOnly: boolean }): string[] {
  return [
    ...supervisedRunArgs(),
    ...networkInputArgs({ url: options.url, ioTimeoutSec: options.ioTimeoutSec }),
    ...inputLivenessProbeArgs(),
    '-map', '0:v:0', '-c', 'copy',
    ...(options.keyframesOnly ? ['-bsf:v', 'filter_units=remove_types=1-4'] : []),
    '-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:3',
  ];
}

export class StreamPull {
  readonly exited: Promise<StreamPullExit>;
  private readonly ffmpeg: FfmpegProcess;
  private readonly reader = new FlvTagReader();
  private unusable: string | undefined;
  private delivered = 0;

  constructor(private readonly options: StreamPullOptions) {
    this.ffmpeg = new FfmpegProcess({
      binary: options.ffmpegPath,
      args: streamPullArgs(options),
      liveness: options.liveness,
      extraPipes: 1,
      stopMode: 'discard',
      env: options.env,
    });
    const media = this.ffmpeg.pipe(3);
    media.on('data', (chunk: Buffer) => this.receive(chunk));
    const drained = new Promise<void>((resolve) => media.once('close', resolve));
    this.exited = Promise.all([this.ffmpeg.exited, drained]).then(([exit]) => ({ ...exit, unusable: this.unusable, packets: Math.max(exit.frames, this.delivered) }));
  }

  /** Video packets received from the source (all of them, also those not passed on). */
  get packetsReceived(): number {
    return this.ffmpeg.framesSeen;
  }

  /** Ends the pull now. Nothing is lost: every whole packet has been passed on. */
  stop(cause: 'requested' | 'stalled' = 'requested'): Promise<StreamPullExit> {
    void this.ffmpeg.stop(cause);
    return this.exited;
  }

  private receive(chunk: Buffer): void {
    if (this.unusable) return;
    let tags: FlvTag[];
    try {
      const hadHeader = this.reader.fileHeader !== undefined;
      tags = this.reader.push(chunk);
      if (!hadHeader && this.reader.fileHeader) this.options.onHeader(this.reader.fileHeader);
    } catch (error) {
      return this.refuse(error instanceof FlvFormatError ? error.message : String(error));
    }
    for (const tag of tags) {
      if (tag.type !== FLV_TAG_VIDEO) continue;
      const info = videoTagInfo(tag);
      if (!info) continue;
      if (!isAvc(info)) return this.refuse(`the source's video is not H.264 (FLV codec id ${info.codecId}); only H.264 sources are supported`);
      if (info.avcPacketType === 1) this.delivered++;
      this.options.onVideoTag(tag, info);
      if (this.unusable) return;
    }
  }

  private refuse(reason: string): void {
    this.unusable = reason;
    void this.ffmpeg.stop('requested');
  }
}

/**
 * What went wrong with a source, in words a user can act on, from how the pull ended. `stderr`
 * may contain the URL: redact before echoing.
 */
export function describeSourceFailure(exit: StreamPullExit, connectTimeoutSec: number): string {
  if (exit.unusable) return exit.unusable;
  if (exit.spawnError) return `ffmpeg could not start: ${exit.spawnError.message}`;
  const stderr = exit.stderrTail.join('\n');
  const refused = /Connection to tcp:\/\/([^\s]+) failed: Connection refused/.exec(stderr);
  if (refused) return `nothing is listening at ${refused[1]} (connection refused)`;
  if (/Failed to resolve hostname|Name or service not known|Temporary failure in name resolution/i.test(stderr)) return 'the host name could not be resolved';
  if (/Server returned 404|StreamNotFound|Stream not found/i.test(stderr)) return 'nothing is being published at this URL (the server says it has no such stream)';
  if (/Server returned 40[13]|Unauthorized|Forbidden/i.test(stderr)) return 'the server refused access to this stream (check the URL and its auth parameters)';
  const serverError = /Server error: ([^\n]+)/.exec(stderr);
  if (serverError) return `the RTMP server refused the stream: ${serverError[1]}`;
  if (/matches no streams|does not contain any stream/.test(stderr)) return 'the source has no video stream';
  if (/Connection timed out|timed out/i.test(stderr)) return 'connecting to the source timed out';
  if (exit.stopCause === 'no-first-frame' || (exit.packets === 0 && !stderr.trim())) {
    return `connected, but no video arrived within connect_timeout (${connectTimeoutSec} s): nothing is being published at this URL`;
  }
  const lastLine = exit.stderrTail.at(-1);
  return lastLine ? `the source failed: ${lastLine}` : `the source closed before any video arrived (ffmpeg exit ${exit.code ?? exit.signal})`;
}
