import type { ErrorCode, ErrorOutcome } from '../errors';
import type { Logger } from '../log';
import type { FlvTag, VideoTagInfo } from '../media/flv';
import { redactUrls } from '../redact';
import { sleep } from '../retry';
import { HlsProxy } from '../sources/hls-proxy';
import { HttpFlvSource } from '../sources/http-flv-source';
import { NodeRtmpSource } from '../sources/rtmp-source';
import { FfmpegPullSource } from '../sources/stream-pull';
import type { ReceptionPath, SourceEnd, VideoSource } from '../sources/video-source';

/**
 * A live stream read through reconnects: one connection at a time, each handed to the caller's
 * consumer, until the source ends, goes idle, fails in a way another attempt cannot mend, or the
 * caller stops it. Until the first packet connect_timeout bounds (re)connecting; after it,
 * idle_timeout does. Our own clients first; ffmpeg once a server speaks something they do not,
 * or for HLS.
 */

export interface LiveStreamOptions {
  url: string;
  idleTimeoutSec: number;
  connectTimeoutSec: number;
  ffmpegPath: string;
  env: Record<string, string>;
  logger: Logger;
  /** Audio tags are asked for only when the consumer takes them. */
  wantsAudio: boolean;
}

/** What one connection's packets go to. */
export interface ConnectionConsumer {
  video(tag: FlvTag, info: VideoTagInfo): void;
  audio?(tag: FlvTag): void;
  /** The connection is over: resolves once what it fed is finished with. */
  closed(): Promise<void>;
}

/** How reading ended: a way the stream ended, or a failure with its code. */
export type LiveStreamEnd = { reason: 'ended' | 'idle' | 'stopped' } | { reason: 'failed'; error: ErrorOutcome };

const RECONNECT_DELAY_MS = 1_000;
/** At most one "reconnecting" log line this often; the count is in the next one. */
const RECONNECT_LOG_EVERY_MS = 10_000;
/** A refused connection is retried this long (a server starting up), then reported. */
const REFUSED_GRACE_MS = 3_000;
/** Source failures that another attempt cannot mend; reported at once. */
const FINAL_FAILURES = new Set(['forbidden', 'unresolvable', 'not-found', 'rejected', 'tls', 'not-h264', 'not-flv', 'spawn', 'no-video', 'redirects']);

export class LiveStream {
  /** Which client received the stream (the last connection's). */
  reception: ReceptionPath | null = null;
  /** When the last video packet arrived (undefined: none yet). */
  lastPacketAt: number | undefined;
  private readonly stopAbort = new AbortController();
  private current: VideoSource | undefined;
  private useFfmpeg = false;
  /** The source's audio could not be relayed (ffmpeg's pull): video only from then on. */
  private audioRefused = false;
  private hlsProxy: HlsProxy | undefined;
  /** The last failure a reconnect may still mend, for the report if none does. */
  lastFailure: string | undefined;
  private readonly startedAt = Date.now();

  constructor(private readonly options: LiveStreamOptions) {}

  get stopped(): boolean {
    return this.stopAbort.signal.aborted;
  }

  /** Ends the current connection and any wait between connections. */
  stop(): void {
    this.stopAbort.abort();
    this.current?.stop();
  }

  async read(connect: () => ConnectionConsumer): Promise<LiveStreamEnd> {
    try {
      return await this.reconnectLoop(connect);
    } finally {
      await this.hlsProxy?.close();
    }
  }

  private async reconnectLoop(connect: () => ConnectionConsumer): Promise<LiveStreamEnd> {
    const { idleTimeoutSec, connectTimeoutSec } = this.options;
    const idleMs = idleTimeoutSec * 1000;
    const connectDeadline = this.startedAt + connectTimeoutSec * 1000;
    const windowEnd = () => (this.lastPacketAt === undefined ? connectDeadline : this.lastPacketAt + idleMs);
    const failed = (message: string, code: ErrorCode = 'SourceUnavailable'): LiveStreamEnd => ({ reason: 'failed', error: { code, message } });
    let reconnects = 0;
    let lastReconnectLog = 0;
    for (let number = 0; ; number++) {
      if (this.stopped) return { reason: 'stopped' };
      const end = await this.connection(number, connect(), Math.max(1_000, windowEnd() - Date.now()), idleMs);
      if (this.stopped) return { reason: 'stopped' };
      const everReceived = this.lastPacketAt !== undefined;
      if (end.reason === 'unsupported' || end.reason === 'is-hls') {
        this.options.logger.info(end.reason === 'is-hls' ? 'the source is HLS; reading it with ffmpeg' : 'the RTMP server speaks something our client does not; using ffmpeg', { detail: end.message });
        this.useFfmpeg = true;
        continue;
      }
      if (end.reason === 'failed' && end.code === 'audio-unsupported' && !this.audioRefused) {
        this.options.logger.warn('the source\'s audio cannot be relayed; going on with video only', { detail: end.message });
        this.audioRefused = true;
        continue;
      }
      if (end.reason === 'failed') {
        const message = end.message ?? 'the source failed';
        if (end.code === 'forbidden') return failed(message, 'ForbiddenSource');
        if (end.code !== undefined && FINAL_FAILURES.has(end.code) && (!everReceived || end.code === 'not-h264')) return failed(message);
        if (end.code === 'refused' && !everReceived && Date.now() - this.startedAt >= REFUSED_GRACE_MS) return failed(message);
        this.lastFailure = message;
      }
      if (end.reason === 'stalled') return { reason: 'idle' };
      if (end.reason === 'no-first-frame') {
        if (everReceived) return { reason: 'idle' };
        return failed(this.lastFailure ?? `connected, but no video arrived within connect_timeout (${connectTimeoutSec} s): nothing is being published at this URL`);
      }
      // A finite HTTP source (a file, an HLS VOD playlist) that ends cleanly is done; a live
      // connection that dropped gets reconnects until the idle (or connect) window closes.
      if (end.reason === 'closed' && end.packets > 0 && /^https?:/i.test(this.options.url)) return { reason: 'ended' };
      if (Date.now() + RECONNECT_DELAY_MS >= windowEnd()) {
        if (everReceived) return { reason: 'ended' };
        return failed(this.lastFailure ?? end.message ?? 'the source closed before any video arrived');
      }
      reconnects++;
      if (Date.now() - lastReconnectLog >= RECONNECT_LOG_EVERY_MS) {
        lastReconnectLog = Date.now();
        this.options.logger.info('source closed; reconnecting', { connection: number, reconnects, reason: redactUrls(end.message ?? end.reason) });
      }
      await sleep(RECONNECT_DELAY_MS, this.stopAbort.signal);
    }
  }

  /** One connection: its packets go to `consumer` as they arrive. */
  private async connection(number: number, consumer: ConnectionConsumer, firstPacketTimeoutMs: number, stallTimeoutMs: number): Promise<SourceEnd> {
    const { url } = this.options;
    const options = {
      url,
      liveness: { firstPacketTimeoutMs, stallTimeoutMs },
      onVideoTag: (tag: FlvTag, info: VideoTagInfo) => {
        this.lastPacketAt = Date.now();
        consumer.video(tag, info);
      },
      onAudioTag: this.options.wantsAudio && !this.audioRefused && consumer.audio ? (tag: FlvTag) => consumer.audio!(tag) : undefined,
    };
    const scheme = new URL(url).protocol;
    const http = scheme === 'http:' || scheme === 'https:';
    const hls = /\.m3u8?$/i.test(new URL(url).pathname);
    let source: VideoSource;
    if (this.useFfmpeg || (http && hls)) {
      if (http) this.hlsProxy ??= await HlsProxy.start();
      source = new FfmpegPullSource({ ...options, ffmpegPath: this.options.ffmpegPath, ioTimeoutSec: this.options.idleTimeoutSec + 5, env: this.options.env, hlsProxy: this.hlsProxy });
    } else if (scheme === 'rtmp:' || scheme === 'rtmps:') {
      source = new NodeRtmpSource(options);
    } else {
      source = new HttpFlvSource(options);
    }
    this.current = source;
    this.reception = source.path;
    if (this.stopped) source.stop();
    const end = await source.ended;
    this.current = undefined;
    await consumer.closed();
    this.options.logger.info('connection ended', { connection: number, path: end.path, reason: end.reason, code: end.code, packets: end.packets, detail: end.message && redactUrls(end.message) });
    return end;
  }
}
