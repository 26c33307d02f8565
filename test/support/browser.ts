import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser, type HTTPRequest, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, it } from 'vitest';

/**
 * Real-browser checks for what the functions store: do the JPEG/PNG snapshots
 * decode, do the MP3/MP4 recordings play and seek, in Chromium?
 *
 * Usage, one browser per test file, skipped with a printed reason when Chromium
 * is missing (like the nginx interop tests):
 *
 *   describeWithBrowser('recordings play in Chromium', (browser) => {
 *     let server: StaticServer;
 *     beforeAll(async () => { server = await startStaticServer(dir); });
 *     afterAll(() => server?.close());
 *     it('plays', async () => {
 *       const result = await browser().checkMedia(server.url('a.mp4'), { kind: 'video', seekTo: 6 });
 *       expect(result.error).toBeNull();
 *       expect(result.play?.advanced).toBe(true);
 *     });
 *   });
 *
 * Or by hand: `describe.skipIf(!chromiumPath())(...)`, plus
 * `it.skip(BROWSER_SKIP_MESSAGE)` and `console.warn(BROWSER_SKIP_MESSAGE)` when it is null.
 *
 * Chromium: `$CHROMIUM_PATH`, default /usr/bin/chromium (Debian's `chromium`
 * package, which plays H.264/AAC MP4 and MP3), driven by puppeteer-core.
 * This module imports vitest, so it is for test files only.
 */

export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

/** The binary the tests would use: `$CHROMIUM_PATH`, else Debian's /usr/bin/chromium. */
function configuredChromiumPath(): string {
  return process.env.CHROMIUM_PATH || DEFAULT_CHROMIUM_PATH;
}

export const BROWSER_SKIP_MESSAGE = `browser tests SKIPPED: no executable Chromium at ${configuredChromiumPath()} (apt-get install chromium, or set CHROMIUM_PATH)`;

/** The Chromium binary to use, or null when it is not installed (or not executable). */
export function chromiumPath(): string | null {
  const candidate = configuredChromiumPath();
  try {
    if (!fs.statSync(candidate).isFile()) return null;
    fs.accessSync(candidate, fs.constants.X_OK);
    return candidate;
  } catch {
    return null;
  }
}

/**
 * `describe(name, body)` with one shared browser, opened before the block's
 * tests and closed after them; `browser()` returns it inside tests and hooks.
 * Without Chromium the block holds one skipped test named BROWSER_SKIP_MESSAGE,
 * and the message is printed.
 */
export function describeWithBrowser(name: string, body: (browser: () => BrowserSession) => void): void {
  if (chromiumPath() === null) {
    describe(name, () => {
      it.skip(BROWSER_SKIP_MESSAGE, () => {});
    });
    console.warn(BROWSER_SKIP_MESSAGE);
    return;
  }
  describe(name, () => {
    let session: BrowserSession | undefined;
    beforeAll(async () => {
      session = await openBrowser();
    });
    afterAll(async () => {
      await session?.close();
    });
    body(() => {
      if (!session) throw new Error('the browser is not open yet (call browser() inside tests or hooks)');
      return session;
    });
  });
}

// ---------------------------------------------------------------------------
// Static file server with Content-Type and Range support
// ---------------------------------------------------------------------------

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.mp4': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.mp3': 'audio/mpeg',
  '.flv': 'video/x-flv',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.m4s': 'video/iso.segment',
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export interface ServedRequest {
  method: string;
  /** The decoded URL path, e.g. "/rec/a.mp4". */
  path: string;
  /** The Range header as sent, or null. */
  range: string | null;
  status: number;
}

export interface StaticServer {
  /** http://127.0.0.1:PORT */
  origin: string;
  /** Absolute URL of a file under the root; `file` is relative to it ("a/b.mp4" or "/a/b.mp4"). */
  url(file: string): string;
  /** Every request answered so far, in order (e.g. to assert that seeking used 206 responses). */
  requests: ServedRequest[];
  close(): Promise<void>;
}

type ByteRange = { start: number; end: number } | 'unsatisfiable' | null;

/** One `bytes=` range of a `size`-byte file; null means "ignore the header, send it all". */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (!header) return null;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  // Multiple ranges or another unit: a server may answer with the whole file.
  if (!match) return null;
  const [, first, last] = match;
  if (first === '' && last === '') return null;
  if (first === '') {
    // Suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/**
 * Serves `root` on 127.0.0.1 (a free port) with Content-Type by extension,
 * `Accept-Ranges: bytes` and single-range 206/416 answers, as media elements
 * need for seeking. No caching, CORS open, nothing outside `root`.
 */
export async function startStaticServer(root: string): Promise<StaticServer> {
  const base = path.resolve(root);
  const requests: ServedRequest[] = [];

  const server = http.createServer((req, res) => {
    const record = (status: number): void => {
      requests.push({ method: req.method ?? '', path: decodedPath, range: req.headers.range ?? null, status });
    };
    let decodedPath = '';
    try {
      decodedPath = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      res.writeHead(400).end();
      record(400);
      return;
    }
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Cache-Control', 'no-store');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      record(405);
      return;
    }
    let file = path.resolve(base, `.${decodedPath}`);
    const relative = path.relative(base, file);
    if (relative.startsWith('..') || path.isAbsolute(relative)) {
      res.writeHead(403).end();
      record(403);
      return;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
      if (stat.isDirectory()) {
        file = path.join(file, 'index.html');
        stat = fs.statSync(file);
      }
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found');
      record(404);
      return;
    }
    const size = stat.size;
    const headers: http.OutgoingHttpHeaders = {
      'Content-Type': CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      'Last-Modified': stat.mtime.toUTCString(),
    };
    const range = parseRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}` }).end();
      record(416);
      return;
    }
    const start = range ? range.start : 0;
    const end = range ? range.end : size - 1;
    const status = range ? 206 : 200;
    res.writeHead(status, {
      ...headers,
      'Content-Length': String(Math.max(0, end - start + 1)),
      ...(range ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
    });
    record(status);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    const stream = fs.createReadStream(file, { start, end });
    stream.on('error', () => res.destroy());
    // The browser often aborts a media request once it has what it wants.
    res.on('close', () => stream.destroy());
    stream.pipe(res);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as import('node:net').AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;

  return {
    origin,
    requests,
    url(file: string): string {
      const parts = file.split(/[\\/]+/).filter((part) => part !== '');
      return `${origin}/${parts.map(encodeURIComponent).join('/')}`;
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Media elements keep connections open; don't wait for them.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * Serves objects by path (e.g. a bucket of the COS emulator, as it is at each request), so a
 * player can follow a recording while it is stored. No ranges (HLS players fetch whole objects),
 * CORS open, no caching.
 */
export async function startObjectServer(lookup: (path: string) => Buffer | undefined): Promise<StaticServer> {
  const requests: ServedRequest[] = [];
  const server = http.createServer((req, res) => {
    const objectPath = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname).slice(1);
    const body = req.method === 'GET' || req.method === 'HEAD' ? lookup(objectPath) : undefined;
    const status = body ? 200 : 404;
    requests.push({ method: req.method ?? '', path: `/${objectPath}`, range: req.headers.range ?? null, status });
    res.writeHead(status, { 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'no-store', 'Content-Type': CONTENT_TYPES[path.extname(objectPath).toLowerCase()] ?? 'application/octet-stream' });
    res.end(req.method === 'GET' ? body : undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
  return {
    origin,
    requests,
    url: (file) => `${origin}/${file.split('/').filter((part) => part !== '').map(encodeURIComponent).join('/')}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------
// Browser checks
// ---------------------------------------------------------------------------

/** Flags for Debian's Chromium as root in a network-less container (see the file header). */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--autoplay-policy=no-user-gesture-required',
];

export interface ImageCheck {
  /** currentSrc, or src when none was chosen. */
  src: string;
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
  /** Which of the element's `load`/`error` events fired (null: neither, e.g. timed out). */
  event: 'load' | 'error' | null;
  /** `img.decode()` rejection ("EncodingError: ..."), or null when it resolved. */
  decodeError: string | null;
  /**
   * Share (0-1) of fully transparent pixels once drawn to a canvas; null when
   * not readable (no size, or a cross-origin image on the page). Chromium
   * renders a truncated JPEG (`load` fires, full naturalWidth, decode()
   * resolves) and leaves the rows it never got transparent: a JPEG has no
   * alpha, so anything above 0 means it is cut short.
   */
  transparentFraction: number | null;
}

export interface MediaErrorInfo {
  /** MediaError.code: 1 aborted, 2 network, 3 decode, 4 src not supported. */
  code: number;
  message: string;
}

export interface PlayCheck {
  /** currentTime when play() was called and after ~playMs of playing. */
  startTime: number;
  endTime: number;
  advanced: boolean;
  /** play() rejection ("NotAllowedError: ..."), or null. */
  error: string | null;
}

export interface FrameCheck {
  /** requestVideoFrameCallback fired for the seeked-to frame. */
  presented: boolean;
  /** The presented frame's media time (s), when presented. */
  mediaTime: number | null;
  /** The frame drawn to a canvas has non-black pixels (null: could not draw, see `error`). */
  nonBlank: boolean | null;
  /** Mean of R, G and B over the drawn frame, 0-255. */
  meanValue: number | null;
  error: string | null;
}

export interface SeekCheck {
  requested: number;
  /** `seeked` fired (within the timeout). */
  seeked: boolean;
  /** currentTime once `seeked` fired (or at the timeout). */
  currentTime: number;
  /** Video only: a frame at the new position could be presented and drawn. */
  frame: FrameCheck | null;
  /** Playing on for a moment from the new position. */
  play: PlayCheck | null;
}

export interface MediaCheck {
  kind: 'video' | 'audio';
  src: string;
  /** `loadedmetadata` fired (readyState >= HAVE_METADATA). */
  metadataLoaded: boolean;
  /** Seconds; Infinity for a live/unknown length, NaN before metadata. */
  duration: number;
  /** videoWidth/videoHeight; 0 for audio. */
  width: number;
  height: number;
  readyState: number;
  /** Seekable ranges [start, end] (s) after loading metadata. */
  seekable: Array<[number, number]>;
  play: PlayCheck | null;
  seek: SeekCheck | null;
  /** The element's MediaError, if any: returned, never thrown. */
  error: MediaErrorInfo | null;
  /** Steps that hit the timeout, e.g. ["loadedmetadata", "seeked"]. */
  timedOut: string[];
}

export interface HlsCheck extends MediaCheck {
  /** Fatal errors hls.js reported ("networkError: manifestLoadError", …). */
  hlsErrors: string[];
  /** The media playlist as hls.js first loaded it; null when it never did. */
  playlist: { live: boolean; segments: number; totalduration: number } | null;
}

/** hls.js's browser build, added to a page by checkHls. */
export const HLS_JS_PATH = require.resolve('hls.js/dist/hls.min.js');

export interface MediaCheckOptions {
  kind: 'video' | 'audio';
  /** Seek here (s) after the play check, then check the position and (video) a frame. */
  seekTo?: number;
  /** How long to play, default 1000 ms. */
  playMs?: number;
  /** Limit for each wait (metadata, play, seek, frame), default 15000 ms. */
  timeoutMs?: number;
}

export interface WaitOptions {
  /** Limit for each wait in the page, default 15000 ms. */
  timeoutMs?: number;
}

export interface BrowserSession {
  /** e.g. "Chrome/156.0.8078.108" */
  version: string;
  /** Loads `pageUrl` and reports every `<img>` on it, once each has loaded or failed. */
  checkImages(pageUrl: string, options?: WaitOptions): Promise<ImageCheck[]>;
  /** Loads one image URL into an `<img>` on a blank page of the same origin. */
  checkImage(url: string, options?: WaitOptions): Promise<ImageCheck>;
  /** Loads one recording into a muted `<video>`/`<audio>`: metadata, ~1 s of play, optionally a seek. */
  checkMedia(url: string, options: MediaCheckOptions): Promise<MediaCheck>;
  /** Plays an HLS playlist with hls.js (from npm) in a muted `<video>`: metadata, ~1 s of play, optionally a seek. */
  checkHls(url: string, options: Omit<MediaCheckOptions, 'kind'>): Promise<HlsCheck>;
  /** Loads `pageUrl` and, one after another, loads and plays each `<video>`/`<audio>` on it. */
  checkMediaElements(pageUrl: string, options?: Omit<MediaCheckOptions, 'kind' | 'seekTo'>): Promise<MediaCheck[]>;
  /** A fresh tab with the check helpers installed, for checks of one's own; close it after. */
  newPage(): Promise<Page>;
  /** Closes the browser and removes its temporary profile. */
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_PLAY_MS = 1_000;
const LAUNCH_TIMEOUT_MS = 30_000;

/**
 * Plain JavaScript installed in every page (evaluateOnNewDocument) as
 * `window.__browserChecks`. Kept as a string, not a function, so the test
 * transpiler's helpers (e.g. esbuild's `__name`) never end up in the page.
 * Non-finite numbers are returned as strings: the protocol can't carry them.
 */
const PAGE_SCRIPT = String.raw`
(() => {
  if (window.__browserChecks) return;
  const imageEvents = new WeakMap();
  // Captured on the document: load/error don't bubble, and don't reach window.
  const remember = (event) => {
    if (event.target instanceof HTMLImageElement && !imageEvents.has(event.target)) imageEvents.set(event.target, event.type);
  };
  document.addEventListener('load', remember, true);
  document.addEventListener('error', remember, true);

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const num = (x) => (Number.isFinite(x) ? x : String(x));
  const describeError = (e) => (e && e.name ? e.name + ': ' + e.message : String(e));
  const withTimeout = (promise, ms) => new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ timedOut: true }), ms);
    promise.then(
      (value) => { clearTimeout(timer); resolve({ value }); },
      (error) => { clearTimeout(timer); resolve({ error }); },
    );
  });
  // Resolves with the name of the first event of 'ok' or 'fail' to fire, or 'timeout'.
  const waitEvent = (target, ok, fail, ms) => new Promise((resolve) => {
    const names = ok.concat(fail);
    const done = (name) => {
      clearTimeout(timer);
      for (const n of names) target.removeEventListener(n, handlers[n]);
      resolve(name);
    };
    const handlers = {};
    for (const n of names) { handlers[n] = () => done(n); target.addEventListener(n, handlers[n]); }
    const timer = setTimeout(() => done('timeout'), ms);
  });

  async function describeImage(img, ms) {
    if (!img.complete) await waitEvent(img, ['load'], ['error'], ms);
    let decodeError = null;
    if (img.complete) {
      const decoded = await withTimeout(img.decode(), ms);
      if (decoded.timedOut) decodeError = 'timeout';
      else if ('error' in decoded) decodeError = describeError(decoded.error);
    } else {
      decodeError = 'timeout';
    }
    return {
      src: img.currentSrc || img.src,
      complete: img.complete,
      naturalWidth: img.naturalWidth,
      naturalHeight: img.naturalHeight,
      event: imageEvents.get(img) || null,
      decodeError,
      transparentFraction: transparentFraction(img),
    };
  }

  // Share of fully transparent pixels; null when unreadable (cross-origin, no size).
  function transparentFraction(img) {
    const width = img.naturalWidth, height = img.naturalHeight;
    if (!width || !height) return null;
    try {
      const canvas = document.createElement('canvas');
      canvas.width = width; canvas.height = height;
      const context = canvas.getContext('2d', { willReadFrequently: true });
      context.drawImage(img, 0, 0);
      const data = context.getImageData(0, 0, width, height).data;
      let transparent = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] === 0) transparent++;
      return transparent / (width * height);
    } catch (e) {
      return null;
    }
  }

  function mediaError(el) {
    return el.error ? { code: el.error.code, message: el.error.message || '' } : null;
  }

  async function play(el, playMs, ms, timedOut) {
    const startTime = el.currentTime;
    let error = null;
    const started = await withTimeout(el.play(), ms);
    if (started.timedOut) { error = 'timeout'; timedOut.push('play'); }
    else if ('error' in started) error = describeError(started.error);
    if (!error) {
      await sleep(playMs);
      // Give a slow start (buffering) until the timeout to move at all.
      const deadline = performance.now() + ms;
      while (el.currentTime <= startTime && !el.error && !el.ended && performance.now() < deadline) await sleep(50);
      if (el.currentTime <= startTime && !el.error && !el.ended) timedOut.push('play-advance');
    }
    const endTime = el.currentTime;
    el.pause();
    return { startTime: num(startTime), endTime: num(endTime), advanced: endTime > startTime, error };
  }

  function drawFrame(video) {
    try {
      const width = video.videoWidth, height = video.videoHeight;
      if (!width || !height) return { nonBlank: null, meanValue: null, error: 'no video size' };
      const canvas = document.createElement('canvas');
      canvas.width = width; canvas.height = height;
      const context = canvas.getContext('2d', { willReadFrequently: true });
      context.drawImage(video, 0, 0, width, height);
      const data = context.getImageData(0, 0, width, height).data;
      let sum = 0, nonZero = 0;
      for (let i = 0; i < data.length; i += 4) {
        const rgb = data[i] + data[i + 1] + data[i + 2];
        sum += rgb;
        if (rgb > 0) nonZero++;
      }
      return { nonBlank: nonZero > 0, meanValue: sum / (3 * width * height), error: null };
    } catch (e) {
      return { nonBlank: null, meanValue: null, error: describeError(e) };
    }
  }

  // Waits for the next presented frame; call before the change that should present one.
  function nextFrame(video, ms) {
    if (typeof video.requestVideoFrameCallback !== 'function') return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), ms);
      video.requestVideoFrameCallback((now, metadata) => { clearTimeout(timer); resolve(metadata); });
    });
  }

  async function checkElement(el, options) {
    const ms = options.timeoutMs, playMs = options.playMs;
    const kind = el instanceof HTMLVideoElement ? 'video' : 'audio';
    const timedOut = [];
    el.muted = true;
    if (el.readyState < 1 && !el.error) {
      if (el.preload === 'none') el.preload = 'metadata';
      if (el.networkState === HTMLMediaElement.NETWORK_EMPTY) el.load();
      const event = await waitEvent(el, ['loadedmetadata'], ['error'], ms);
      if (event === 'timeout') timedOut.push('loadedmetadata');
    }
    const result = {
      kind,
      src: el.currentSrc || el.src,
      metadataLoaded: el.readyState >= 1,
      duration: num(el.duration),
      width: kind === 'video' ? el.videoWidth : 0,
      height: kind === 'video' ? el.videoHeight : 0,
      readyState: el.readyState,
      seekable: Array.from({ length: el.seekable.length }, (_, i) => [num(el.seekable.start(i)), num(el.seekable.end(i))]),
      play: null,
      seek: null,
      error: mediaError(el),
      timedOut,
    };
    if (!result.metadataLoaded || result.error) return result;

    result.play = await play(el, playMs, ms, timedOut);

    if (typeof options.seekTo === 'number' && !el.error) {
      const frame = kind === 'video' ? nextFrame(el, ms) : null;
      el.currentTime = options.seekTo;
      const event = await waitEvent(el, ['seeked'], ['error'], ms);
      if (event === 'timeout') timedOut.push('seeked');
      const seek = { requested: options.seekTo, seeked: event === 'seeked', currentTime: num(el.currentTime), frame: null, play: null };
      if (kind === 'video' && seek.seeked) {
        const metadata = await frame;
        if (!metadata) timedOut.push('frame');
        seek.frame = Object.assign({ presented: !!metadata, mediaTime: metadata ? metadata.mediaTime : null }, drawFrame(el));
      }
      if (seek.seeked && !el.error) seek.play = await play(el, Math.min(playMs, 500), ms, timedOut);
      result.seek = seek;
    }
    result.error = mediaError(el);
    return result;
  }

  window.__browserChecks = {
    async images(ms) {
      const images = Array.from(document.images);
      const results = [];
      for (const img of images) results.push(await describeImage(img, ms));
      return results;
    },
    async image(url, ms) {
      const img = document.createElement('img');
      document.body.appendChild(img);
      img.src = url;
      return describeImage(img, ms);
    },
    async media(url, options) {
      const el = document.createElement(options.kind);
      el.muted = true;
      el.preload = 'auto';
      el.playsInline = true;
      if (options.kind === 'video') { el.width = 320; el.height = 180; }
      el.src = url;
      document.body.appendChild(el);
      return checkElement(el, options);
    },
    // hls.js (added to the page by checkHls) playing an HLS playlist in a <video>; its fatal errors are reported.
    async hls(url, options) {
      const el = document.createElement('video');
      el.muted = true;
      el.playsInline = true;
      el.width = 320; el.height = 180;
      document.body.appendChild(el);
      const hlsErrors = [];
      const hls = new window.Hls({ enableWorker: false });
      hls.on(window.Hls.Events.ERROR, (event, data) => { if (data.fatal) hlsErrors.push(data.type + ': ' + data.details); });
      const parsed = new Promise((resolve) => hls.once(window.Hls.Events.LEVEL_LOADED, (event, data) => resolve(data.details)));
      hls.loadSource(url);
      hls.attachMedia(el);
      const details = await withTimeout(parsed, options.timeoutMs);
      const result = await checkElement(el, options);
      const playlist = details.value ? { live: details.value.live, segments: details.value.fragments.length, totalduration: details.value.totalduration } : null;
      hls.destroy();
      return Object.assign(result, { hlsErrors, playlist });
    },
    mediaElementCount() {
      return document.querySelectorAll('video, audio').length;
    },
    async mediaElement(index, options) {
      return checkElement(document.querySelectorAll('video, audio')[index], options);
    },
  };
})();
`;

/** Puts back the Infinity/NaN that the page sent as strings. */
function reviveNumbers<T>(value: unknown): T {
  if (value === 'Infinity' || value === '-Infinity' || value === 'NaN') return Number(value) as T;
  if (Array.isArray(value)) return value.map((item) => reviveNumbers(item)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, key === 'src' || key === 'message' || key === 'error' || key === 'decodeError' ? item : reviveNumbers(item)]),
    ) as T;
  }
  return value as T;
}

function withNodeTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const BLANK_PAGE_PATH = '/__browser-checks-blank__.html';

/**
 * Points `page` at an empty document of `url`'s origin, answered by the
 * browser itself (request interception) so the server is not involved: the
 * media/image is then same-origin and a canvas can read it without CORS.
 */
async function openBlankPageFor(page: Page, url: string, timeoutMs: number): Promise<void> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    target = new URL('about:blank');
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    await page.goto('about:blank', { timeout: timeoutMs });
    return;
  }
  const blank = `${target.origin}${BLANK_PAGE_PATH}`;
  const onRequest = (request: HTTPRequest): void => {
    if (request.url() === blank) {
      void request.respond({ status: 200, contentType: 'text/html; charset=utf-8', body: '<!doctype html><html><body></body></html>' });
    } else {
      void request.continue();
    }
  };
  await page.setRequestInterception(true);
  page.on('request', onRequest);
  try {
    await page.goto(blank, { timeout: timeoutMs, waitUntil: 'load' });
  } finally {
    page.off('request', onRequest);
    await page.setRequestInterception(false);
  }
}

/** Launches Chromium (CHROMIUM_ARGS, a temporary profile); throws when it is missing or does not start. */
export async function openBrowser(): Promise<BrowserSession> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error(BROWSER_SKIP_MESSAGE);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  const removeProfile = (): void => {
    try {
      fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // Best effort.
    }
  };
  // Puppeteer kills the browser when this process exits; the profile goes too.
  process.once('exit', removeProfile);

  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath,
      headless: true,
      userDataDir,
      args: [...CHROMIUM_ARGS],
      timeout: LAUNCH_TIMEOUT_MS,
      // Above any single check's own bound (mediaBackstop at the default timeout).
      protocolTimeout: 300_000,
    });
  } catch (error) {
    removeProfile();
    process.off('exit', removeProfile);
    throw error;
  }
  const version = await browser.version();

  const newPage = async (): Promise<Page> => {
    const page = await browser.newPage();
    await page.evaluateOnNewDocument(PAGE_SCRIPT);
    return page;
  };

  /** Runs `check` in a fresh tab, closed after; `backstopMs` bounds the whole check. */
  const inPage = async <T>(what: string, backstopMs: number, check: (page: Page) => Promise<T>): Promise<T> => {
    const page = await newPage();
    try {
      return await withNodeTimeout(check(page), backstopMs, what);
    } finally {
      await page.close().catch(() => undefined);
    }
  };
  /** Evaluates an expression using window.__browserChecks; Infinity/NaN put back. */
  const run = async <T>(page: Page, expression: string): Promise<T> => reviveNumbers<T>(await page.evaluate(expression));
  /** Worst case of one media check: each of its ~7 waits times out. */
  const mediaBackstop = (ms: number, playMs: number): number => 8 * ms + 2 * playMs + 10_000;

  let closed: Promise<void> | undefined;
  return {
    version,
    newPage,
    async checkImages(pageUrl, options = {}) {
      const ms = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const page = await newPage();
      try {
        // Not 'load', which waits for every image: a stuck one gets its own timeout below.
        await withNodeTimeout(page.goto(pageUrl, { timeout: ms, waitUntil: 'domcontentloaded' }), ms + 5_000, `loading ${pageUrl}`);
        // Each image waits at most 2 x ms in the page (load, then decode).
        const count = await run<number>(page, 'document.images.length');
        return await withNodeTimeout(
          run<ImageCheck[]>(page, `window.__browserChecks.images(${ms})`),
          (2 * count + 1) * ms + 10_000,
          `checkImages(${pageUrl})`,
        );
      } finally {
        await page.close().catch(() => undefined);
      }
    },
    checkImage(url, options = {}) {
      const ms = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      return inPage(`checkImage(${url})`, 4 * ms, async (page) => {
        await openBlankPageFor(page, url, ms);
        return run<ImageCheck>(page, `window.__browserChecks.image(${JSON.stringify(url)}, ${ms})`);
      });
    },
    checkMedia(url, options) {
      const ms = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const playMs = options.playMs ?? DEFAULT_PLAY_MS;
      const pageOptions = { kind: options.kind, seekTo: options.seekTo, playMs, timeoutMs: ms };
      return inPage(`checkMedia(${url})`, mediaBackstop(ms, playMs), async (page) => {
        await openBlankPageFor(page, url, ms);
        return run<MediaCheck>(page, `window.__browserChecks.media(${JSON.stringify(url)}, ${JSON.stringify(pageOptions)})`);
      });
    },
    checkHls(url, options) {
      const ms = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const playMs = options.playMs ?? DEFAULT_PLAY_MS;
      const pageOptions = { seekTo: options.seekTo, playMs, timeoutMs: ms };
      return inPage(`checkHls(${url})`, mediaBackstop(ms, playMs), async (page) => {
        await openBlankPageFor(page, url, ms);
        await page.addScriptTag({ path: HLS_JS_PATH });
        return run<HlsCheck>(page, `window.__browserChecks.hls(${JSON.stringify(url)}, ${JSON.stringify(pageOptions)})`);
      });
    },
    async checkMediaElements(pageUrl, options = {}) {
      const ms = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const playMs = options.playMs ?? DEFAULT_PLAY_MS;
      const pageOptions = { playMs, timeoutMs: ms };
      const page = await newPage();
      try {
        await withNodeTimeout(page.goto(pageUrl, { timeout: ms, waitUntil: 'load' }), ms + 5_000, `loading ${pageUrl}`);
        const count = await run<number>(page, 'window.__browserChecks.mediaElementCount()');
        const results: MediaCheck[] = [];
        // One element at a time, each with its own bound.
        for (let index = 0; index < count; index++) {
          results.push(
            await withNodeTimeout(
              run<MediaCheck>(page, `window.__browserChecks.mediaElement(${index}, ${JSON.stringify(pageOptions)})`),
              mediaBackstop(ms, playMs),
              `checkMediaElements(${pageUrl}) element ${index}`,
            ),
          );
        }
        return results;
      } finally {
        await page.close().catch(() => undefined);
      }
    },
    close() {
      closed ??= (async () => {
        try {
          await withNodeTimeout(browser.close(), 15_000, 'closing Chromium');
        } catch {
          browser.process()?.kill('SIGKILL');
        } finally {
          removeProfile();
          process.off('exit', removeProfile);
        }
      })();
      return closed;
    },
  };
}
