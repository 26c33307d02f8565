import http from 'node:http';
import https from 'node:https';
import { FlvFormatError, FlvTagReader, FLV_TAG_AUDIO, FLV_TAG_VIDEO, isAvc, videoTagInfo } from '../media/flv';
import { LivenessWatch } from '../liveness';
import { guardedLookup } from '../network-guard';
import { notH264 } from './rtmp-source';
import { describeConnectionError, type SourceEnd, type VideoSource, type VideoSourceOptions } from './video-source';

const MAX_REDIRECTS = 5;

/**
 * HTTP(S)-FLV read by Node: one GET (redirects followed, each hop through the guarded lookup; TLS
 * verified with SNI), the body cut into whole tags. A body that turns out to be an HLS playlist
 * ends the source as `is-hls`, for ffmpeg to read.
 */
export class HttpFlvSource implements VideoSource {
  readonly path = 'node-http-flv' as const;
  readonly ended: Promise<SourceEnd>;
  private request: http.ClientRequest | undefined;
  private readonly liveness: LivenessWatch;
  private readonly reader = new FlvTagReader();
  private packets = 0;
  private settle!: (end: SourceEnd) => void;
  private settled = false;

  constructor(private readonly options: VideoSourceOptions) {
    this.ended = new Promise((resolve) => (this.settle = resolve));
    this.liveness = new LivenessWatch(options.liveness, (failure) => this.end({ reason: failure }));
    this.get(options.url, 0);
  }

  stop(): void {
    this.end({ reason: 'stopped' });
  }

  private end(end: Omit<SourceEnd, 'packets' | 'path'>): void {
    if (this.settled) return;
    this.settled = true;
    this.liveness.dispose();
    this.request?.destroy();
    this.settle({ ...end, packets: this.packets, path: this.path });
  }

  private get(url: string, redirects: number): void {
    const target = new URL(url);
    const transport = target.protocol === 'https:' ? https : http;
    const request = transport.get(target, { lookup: guardedLookup, headers: { 'user-agent': 'serverless-media-functions' } }, (response) => {
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (status >= 300 && status < 400 && location) {
        response.resume();
        if (redirects >= MAX_REDIRECTS) return this.end({ reason: 'failed', code: 'redirects', message: `more than ${MAX_REDIRECTS} redirects` });
        const next = new URL(location, target);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') return this.end({ reason: 'failed', code: 'redirects', message: `redirected to a ${next.protocol} URL` });
        return this.get(next.toString(), redirects + 1);
      }
      if (status !== 200) {
        response.resume();
        return this.end({ reason: 'failed', code: status === 404 ? 'not-found' : 'rejected', message: describeHttpStatus(status) });
      }
      response.on('data', (chunk: Buffer) => this.receive(chunk));
      response.on('end', () => this.end({ reason: 'closed', message: 'the server ended the response' }));
      response.on('error', (error) => this.end({ reason: 'closed', message: error.message }));
    });
    this.request = request;
    request.on('error', (error: NodeJS.ErrnoException) => this.end(describeConnectionError(error, `${target.hostname}:${target.port || (target.protocol === 'https:' ? 443 : 80)}`)));
  }

  private receive(chunk: Buffer): void {
    if (this.settled) return;
    if (this.reader.fileHeader === undefined && this.reader.bufferedBytes === 0 && chunk.subarray(0, 7).toString('latin1') === '#EXTM3U') {
      return this.end({ reason: 'is-hls' });
    }
    try {
      for (const tag of this.reader.push(chunk)) {
        if (tag.type === FLV_TAG_AUDIO) this.options.onAudioTag?.(tag);
        if (tag.type !== FLV_TAG_VIDEO) continue;
        const info = videoTagInfo(tag);
        if (!info) continue;
        if (!isAvc(info)) return this.end({ reason: 'failed', code: 'not-h264', message: notH264(info.codecId) });
        this.packets++;
        this.liveness.alive();
        this.options.onVideoTag(tag, info);
        if (this.settled) return;
      }
    } catch (error) {
      const message = error instanceof FlvFormatError ? error.message : String(error);
      this.end({ reason: 'failed', code: 'not-flv', message: `the server's answer is neither FLV nor an HLS playlist (${message})` });
    }
  }
}

export function describeHttpStatus(status: number): string {
  if (status === 404) return 'nothing is being published at this URL (the server says it has no such stream: HTTP 404)';
  if (status === 401 || status === 403) return `the server refused access to this stream (HTTP ${status}; check the URL and its auth parameters)`;
  return `the server answered HTTP ${status}`;
}
