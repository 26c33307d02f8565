import { networkInputArgs, supervisedRunArgs } from '../ffmpeg/args';
import { FfmpegProcess, type FfmpegExit } from '../ffmpeg/supervisor';
import { FlvFormatError, FlvTagReader, FLV_TAG_AUDIO, FLV_TAG_VIDEO, isAvc, videoTagInfo } from '../media/flv';
import type { HlsProxy } from './hls-proxy';
import { parseRtmpUrl } from './rtmp/client';
import { notH264 } from './rtmp-source';
import { RtmpForwarder } from './rtmp-forwarder';
import type { SourceEnd, VideoSource, VideoSourceOptions } from './video-source';

/**
 * ffmpeg as the receiver: for HLS, and for RTMP servers our own client cannot talk to. ffmpeg only
 * ever connects to loopback — the HLS proxy or a forwarder — so it resolves no names and does no
 * TLS (see hls-proxy.ts, rtmp-forwarder.ts). It remuxes the video, untouched, to FLV on a pipe,
 * a packet at a time; Node cuts that into whole tags. Nothing is decoded here.
 */

export interface StreamPullInput {
  /** What ffmpeg opens: a loopback URL. */
  url: string;
  /** For RTMP through a forwarder: the source's own tcUrl, sent in `connect`. */
  rtmpTcUrl?: string;
  ioTimeoutSec: number;
  /** Also relay the first audio stream, when there is one. */
  withAudio?: boolean;
}

/**
 * The video stream as FLV on fd 3, every packet flushed as it comes. The null output comes first
 * so that `-progress frame=` counts every packet received (liveness). RTMP is read as `live_flv`,
 * which lets ffmpeg smooth over a publisher that restarts its timestamps.
 */
export function streamPullArgs(input: StreamPullInput): string[] {
  return [
    ...supervisedRunArgs(),
    ...(input.rtmpTcUrl ? ['-rtmp_tcurl', input.rtmpTcUrl, '-f', 'live_flv'] : []),
    ...networkInputArgs({ url: input.url, ioTimeoutSec: input.ioTimeoutSec }),
    '-map', '0:v:0', '-c', 'copy', '-f', 'null', '-',
    // ADTS AAC (HLS, MPEG-TS) becomes what FLV holds; this ffmpeg does not insert the filter itself.
    '-map', '0:v:0', ...(input.withAudio ? ['-map', '0:a:0?'] : []), '-c', 'copy', ...(input.withAudio ? ['-bsf:a', 'aac_adtstoasc'] : []),
    '-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:3',
  ];
}

export interface FfmpegPullOptions extends VideoSourceOptions {
  ffmpegPath: string;
  ioTimeoutSec: number;
  env?: Record<string, string>;
  /** For HLS (and HTTP sources generally): the job's loopback proxy. */
  hlsProxy?: HlsProxy;
}

export class FfmpegPullSource implements VideoSource {
  readonly path = 'ffmpeg' as const;
  readonly ended: Promise<SourceEnd>;
  private ffmpeg: FfmpegProcess | undefined;
  private readonly reader = new FlvTagReader();
  private refusal: SourceEnd | undefined;
  private packets = 0;
  private stopped = false;

  constructor(private readonly options: FfmpegPullOptions) {
    this.ended = this.run();
  }

  stop(): void {
    this.stopped = true;
    void this.ffmpeg?.stop('requested');
  }

  private async run(): Promise<SourceEnd> {
    const source = new URL(this.options.url);
    let forwarder: RtmpForwarder | undefined;
    let input: StreamPullInput;
    if (source.protocol === 'rtmp:' || source.protocol === 'rtmps:') {
      const target = parseRtmpUrl(this.options.url);
      forwarder = await RtmpForwarder.start(target);
      // The same path (app, stream, query) at the forwarder; the server sees the original tcUrl.
      input = { url: `rtmp://127.0.0.1:${forwarder.port}${source.pathname}${source.search}`, rtmpTcUrl: target.tcUrl, ioTimeoutSec: this.options.ioTimeoutSec, withAudio: this.options.onAudioTag !== undefined };
    } else {
      if (!this.options.hlsProxy) throw new Error('an HTTP source read by ffmpeg needs the HLS proxy');
      input = { url: this.options.hlsProxy.localUrl(this.options.url), ioTimeoutSec: this.options.ioTimeoutSec, withAudio: this.options.onAudioTag !== undefined };
    }
    try {
      if (this.stopped) return { reason: 'stopped', packets: 0, path: this.path };
      this.ffmpeg = new FfmpegProcess({
        binary: this.options.ffmpegPath,
        args: streamPullArgs(input),
        liveness: this.options.liveness,
        extraPipes: 1,
        // Every packet it delivered is ours already: no need to let it finish anything.
        stopMode: 'discard',
        env: this.options.env,
      });
      const media = this.ffmpeg.pipe(3);
      media.on('data', (chunk: Buffer) => this.receive(chunk));
      const drained = new Promise<void>((resolve) => media.once('close', resolve));
      const [exit] = await Promise.all([this.ffmpeg.exited, drained]);
      return this.describe(exit, forwarder);
    } finally {
      forwarder?.close();
    }
  }

  private receive(chunk: Buffer): void {
    if (this.refusal) return;
    try {
      for (const tag of this.reader.push(chunk)) {
        if (tag.type === FLV_TAG_AUDIO) this.options.onAudioTag?.(tag);
        if (tag.type !== FLV_TAG_VIDEO) continue;
        const info = videoTagInfo(tag);
        if (!info) continue;
        if (!isAvc(info)) return this.refuse({ code: 'not-h264', message: notH264(info.codecId) });
        this.packets++;
        this.options.onVideoTag(tag, info);
        if (this.refusal) return;
      }
    } catch (error) {
      this.refuse({ code: 'not-flv', message: error instanceof FlvFormatError ? error.message : String(error) });
    }
  }

  private refuse(why: { code: string; message: string }): void {
    this.refusal = { reason: 'failed', ...why, packets: this.packets, path: this.path };
    void this.ffmpeg?.stop('requested');
  }

  private describe(exit: FfmpegExit, forwarder: RtmpForwarder | undefined): SourceEnd {
    const packets = Math.max(this.packets, exit.frames);
    const end = (fields: Omit<SourceEnd, 'packets' | 'path'>): SourceEnd => ({ ...fields, packets, path: this.path });
    if (this.refusal) return this.refusal;
    if (exit.spawnError) return end({ reason: 'failed', code: 'spawn', message: `ffmpeg could not start: ${exit.spawnError.message}` });
    if (exit.stopCause === 'requested' || this.stopped) return end({ reason: 'stopped' });
    const upstream = forwarder?.upstreamFailure ?? this.options.hlsProxy?.lastUpstreamFailure;
    if (upstream && packets === 0) return end({ reason: 'failed', ...upstream });
    if (exit.stopCause === 'stalled' || exit.stopCause === 'no-first-frame') return end({ reason: exit.stopCause });
    // Killed by a signal we did not send: it crashed.
    if (exit.signal) return end({ reason: 'failed', code: 'crashed', message: `ffmpeg crashed (${exit.signal}) while reading the source` });
    const stderr = exit.stderrTail.join('\n');
    if (/Server error: ([^\n]+)/.test(stderr)) return end({ reason: 'failed', code: 'rejected', message: `the RTMP server refused the stream: ${/Server error: ([^\n]+)/.exec(stderr)![1]}` });
    if (/Server returned 404|StreamNotFound|Stream not found/i.test(stderr)) return end({ reason: 'failed', code: 'not-found', message: 'nothing is being published at this URL (the server says it has no such stream)' });
    if (/Server returned 40[13]|Unauthorized|Forbidden/i.test(stderr)) return end({ reason: 'failed', code: 'rejected', message: 'the server refused access to this stream (check the URL and its auth parameters)' });
    if (/matches no streams|does not contain any stream/.test(stderr)) return end({ reason: 'failed', code: 'no-video', message: 'the source has no video stream' });
    if (/bitstream filter|Malformed AAC/i.test(stderr)) return end({ reason: 'failed', code: 'audio-unsupported', message: "the source's audio cannot be relayed as it is (not AAC)" });
    if (exit.code === 0) return end({ reason: 'closed', message: 'the source ended' });
    const lastLine = exit.stderrTail.at(-1);
    return end({ reason: 'closed', message: lastLine ? `ffmpeg: ${lastLine}` : `ffmpeg exited with ${exit.code}` });
  }
}
