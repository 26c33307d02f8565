import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { guardedLookup } from '../network-guard';
import { describeConnectionError } from './video-source';

/**
 * A loopback HTTP server through which ffmpeg reads HLS: ffmpeg only ever sees
 * `http://127.0.0.1:<port>/...`, so it never resolves a name (the static build crashes when it
 * does) and never does TLS itself (it would not verify certificates). Node fetches each URL
 * (redirects followed, every hop through the guarded lookup, TLS verified), and rewrites every
 * URI in a playlist — variants, segments, keys, init sections — to one of ours.
 */

const MAX_REDIRECTS = 5;
/** A playlist larger than this is not one; refusing it bounds memory. */
const MAX_PLAYLIST_BYTES = 4 * 1024 * 1024;
/** URLs remembered; a live playlist names a few new ones per refresh, old ones are let go. */
const MAX_MAPPED_URLS = 20_000;
const UPSTREAM_TIMEOUT_MS = 15_000;

export class HlsProxy {
  private readonly token = randomBytes(12).toString('hex');
  private readonly urls = new Map<string, string>();
  private nextId = 0;
  /** The last failure to reach the origin, in words: ffmpeg would only say "Server returned 502". */
  lastUpstreamFailure: { code?: string; message: string } | undefined;

  private constructor(private readonly server: http.Server) {
    server.on('request', (request, response) => void this.serve(request, response));
  }

  static async start(): Promise<HlsProxy> {
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    return new HlsProxy(server);
  }

  /** Where ffmpeg reads `upstream` from. The last path element is kept: demuxers look at it. */
  localUrl(upstream: string): string {
    const id = String(this.nextId++);
    this.urls.set(id, upstream);
    if (this.urls.size > MAX_MAPPED_URLS) this.urls.delete(this.urls.keys().next().value!);
    const basename = new URL(upstream).pathname.split('/').pop() || 'index';
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/${this.token}/${id}/${encodeURIComponent(basename)}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async serve(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const [, token, id] = (request.url ?? '').split('/');
    const upstream = token === this.token && id !== undefined ? this.urls.get(id) : undefined;
    if (!upstream || request.method !== 'GET') {
      response.writeHead(404).end();
      return;
    }
    try {
      const { body, finalUrl } = await this.fetch(upstream, 0, request.headers.range);
      const status = body.statusCode ?? 502;
      if (status >= 400) this.lastUpstreamFailure = { code: status === 404 ? 'not-found' : 'rejected', message: `the server answered HTTP ${status} for ${redactQuery(finalUrl)}` };
      const type = String(body.headers['content-type'] ?? '');
      if (status === 200 && (/mpegurl/i.test(type) || /\.m3u8?$/i.test(new URL(finalUrl).pathname))) {
        const text = await readBounded(body, MAX_PLAYLIST_BYTES);
        response.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl' });
        response.end(this.rewritePlaylist(text, finalUrl));
        return;
      }
      const headers: http.OutgoingHttpHeaders = {};
      for (const name of ['content-type', 'content-length', 'content-range', 'accept-ranges']) if (body.headers[name]) headers[name] = body.headers[name];
      response.writeHead(status, headers);
      body.pipe(response);
      body.on('error', () => response.destroy());
    } catch (error) {
      const target = new URL(upstream);
      this.lastUpstreamFailure = describeConnectionError(error as NodeJS.ErrnoException, `${target.hostname}:${target.port || (target.protocol === 'https:' ? 443 : 80)}`) as { code?: string; message: string };
      if (!response.headersSent) response.writeHead(502).end();
      else response.destroy();
    }
  }

  private fetch(url: string, redirects: number, range?: string): Promise<{ body: http.IncomingMessage; finalUrl: string }> {
    const target = new URL(url);
    const transport = target.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const request = transport.get(target, { lookup: guardedLookup, timeout: UPSTREAM_TIMEOUT_MS, headers: range ? { range } : {} }, (body) => {
        const location = body.headers.location;
        const status = body.statusCode ?? 0;
        if (status >= 300 && status < 400 && location) {
          body.resume();
          const next = new URL(location, target);
          if (redirects >= MAX_REDIRECTS || (next.protocol !== 'http:' && next.protocol !== 'https:')) return reject(Object.assign(new Error(`too many or unusable redirects from ${redactQuery(url)}`), { code: 'EREDIRECT' }));
          return resolve(this.fetch(next.toString(), redirects + 1, range));
        }
        resolve({ body, finalUrl: url });
      });
      request.on('timeout', () => request.destroy(Object.assign(new Error('the origin did not answer in time'), { code: 'ETIMEDOUT' })));
      request.on('error', reject);
    });
  }

  /** Every URI in the playlist, resolved against where it came from, mapped to one of ours. */
  private rewritePlaylist(text: string, baseUrl: string): string {
    const map = (uri: string) => {
      try {
        const absolute = new URL(uri, baseUrl);
        return absolute.protocol === 'http:' || absolute.protocol === 'https:' ? this.localUrl(absolute.toString()) : uri;
      } catch {
        return uri;
      }
    };
    return text
      .split(/\r?\n/)
      .map((line) => {
        const trimmed = line.trim();
        if (trimmed === '') return line;
        if (!trimmed.startsWith('#')) return map(trimmed);
        return line.replace(/URI="([^"]*)"/g, (_, uri: string) => `URI="${map(uri)}"`);
      })
      .join('\n');
  }
}

function readBounded(body: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        body.destroy();
        reject(new Error(`a playlist of more than ${limit} bytes`));
      } else parts.push(chunk);
    });
    body.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    body.on('error', reject);
  });
}

function redactQuery(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${parsed.search ? '?…' : ''}`;
}
