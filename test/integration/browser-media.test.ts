/**
 * What a person would see: the stored JPEG/PNG snapshots and MP3/MP4 recordings,
 * opened in a real Chromium (Debian's, headless) through test/support/browser.ts.
 * Skipped, with the reason printed, when Chromium is not installed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithBrowser, parseRange, startStaticServer, type StaticServer } from '../support/browser';
import { runTracked } from '../support/child-processes';
import { ffmpegPath } from '../support/media-tools';

const SECONDS = 10;
const FPS = 25;
const GOP_SECONDS = 2;

async function ffmpeg(args: string[]): Promise<void> {
  const result = await runTracked(ffmpegPath, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', ...args], 120_000);
  if (result.code !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`);
}

/** testsrc2 + a 440 Hz tone, H.264/AAC with a keyframe every GOP_SECONDS. */
function avInputs(seconds: number): string[] {
  const gop = String(FPS * GOP_SECONDS);
  return [
    '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${FPS}`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
    '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-profile:v', 'main',
    '-g', gop, '-keyint_min', gop, '-sc_threshold', '0',
    '-c:a', 'aac', '-b:a', '96k',
  ];
}

interface Box {
  type: string;
  offset: number;
  size: number;
}

/** The top-level ISO-BMFF boxes of a file. */
function topLevelBoxes(data: Buffer): Box[] {
  const boxes: Box[] = [];
  let offset = 0;
  while (offset + 8 <= data.length) {
    let size = data.readUInt32BE(offset);
    const type = data.toString('latin1', offset + 4, offset + 8);
    if (size === 1) size = Number(data.readBigUInt64BE(offset + 8));
    else if (size === 0) size = data.length - offset;
    if (size < 8) break;
    boxes.push({ type, offset, size });
    offset += size;
  }
  return boxes;
}

/**
 * The fragmented MP4 cut in the middle of the mdat of fragment `index` (0-based),
 * as a recorder killed mid-write leaves it.
 */
function truncateMidFragment(data: Buffer, index: number): { data: Buffer; completeSeconds: number } {
  const boxes = topLevelBoxes(data);
  const moofs = boxes.filter((box) => box.type === 'moof');
  const moof = moofs[index];
  if (!moof) throw new Error(`no fragment ${index}: boxes ${boxes.map((b) => b.type).join(',')}`);
  const mdat = boxes[boxes.indexOf(moof) + 1];
  if (mdat?.type !== 'mdat') throw new Error('moof not followed by mdat');
  const cut = mdat.offset + Math.floor(mdat.size / 2);
  return { data: data.subarray(0, cut), completeSeconds: index * GOP_SECONDS };
}

describe('static server for browser tests', () => {
  let dir: string;
  let server: StaticServer;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'static-server-'));
    fs.mkdirSync(path.join(dir, 'sub dir'));
    fs.writeFileSync(path.join(dir, 'sub dir', 'a.mp4'), Buffer.from('0123456789'));
    fs.writeFileSync(path.join(dir, 'x.json'), '{}');
    fs.writeFileSync(path.join(dir, 'empty.jpg'), '');
    server = await startStaticServer(dir);
  });
  afterAll(async () => {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('parses single byte ranges', () => {
    expect(parseRange(undefined, 10)).toBeNull();
    expect(parseRange('bytes=0-', 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=2-4', 10)).toEqual({ start: 2, end: 4 });
    expect(parseRange('bytes=5-100', 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(parseRange('bytes=-30', 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=10-', 10)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-1,3-4', 10)).toBeNull();
    expect(parseRange('items=0-1', 10)).toBeNull();
    expect(parseRange('bytes=4-2', 10)).toBeNull();
  });

  it('serves files with their Content-Type, whole or by range', async () => {
    const whole = await fetch(server.url('sub dir/a.mp4'));
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-type')).toBe('video/mp4');
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    expect(await whole.text()).toBe('0123456789');

    const part = await fetch(server.url('/sub dir/a.mp4'), { headers: { Range: 'bytes=3-5' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 3-5/10');
    expect(part.headers.get('content-length')).toBe('3');
    expect(await part.text()).toBe('345');

    const past = await fetch(server.url('sub dir/a.mp4'), { headers: { Range: 'bytes=10-' } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe('bytes */10');

    const json = await fetch(server.url('x.json'));
    expect(json.headers.get('content-type')).toBe('application/json');
    const empty = await fetch(server.url('empty.jpg'));
    expect([empty.status, empty.headers.get('content-type'), (await empty.arrayBuffer()).byteLength]).toEqual([200, 'image/jpeg', 0]);
    expect((await fetch(server.url('missing.png'))).status).toBe(404);
    expect((await fetch(`${server.origin}/..%2f..%2fetc%2fpasswd`)).status).toBe(403);
    expect(server.requests.find((r) => r.range === 'bytes=3-5')).toMatchObject({ path: '/sub dir/a.mp4', status: 206 });
  });
});

describeWithBrowser('browser: stored snapshots and recordings in Chromium', (browser) => {
  let dir: string;
  let server: StaticServer;
  let truncatedCompleteSeconds = 0;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'browser-media-'));
    const file = (name: string): string => path.join(dir, name);
    await Promise.all([
      ffmpeg([...avInputs(SECONDS), '-movflags', '+frag_keyframe+empty_moov+default_base_moof', file('fragmented.mp4')]),
      ffmpeg([...avInputs(SECONDS), '-movflags', '+faststart', file('faststart.mp4')]),
    ]);
    await Promise.all([
      ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100', '-t', '5', '-c:a', 'libmp3lame', '-b:a', '64k', file('audio.mp3')]),
      ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=1', '-frames:v', '1', '-q:v', '3', file('snapshot.jpg')]),
      ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=1', '-frames:v', '1', file('snapshot.png')]),
    ]);
    // The fixtures are what they claim: moov first then fragments / moov before mdat.
    const fragmented = fs.readFileSync(file('fragmented.mp4'));
    const fragmentedTypes = topLevelBoxes(fragmented).map((box) => box.type);
    expect(fragmentedTypes.slice(0, 3)).toEqual(['ftyp', 'moov', 'moof']);
    expect(fragmentedTypes.filter((type) => type === 'moof')).toHaveLength(SECONDS / GOP_SECONDS);
    const faststartTypes = topLevelBoxes(fs.readFileSync(file('faststart.mp4'))).map((box) => box.type);
    expect(faststartTypes.indexOf('moov')).toBeLessThan(faststartTypes.indexOf('mdat'));
    // Fragment 3 covers 6-8 s: 0-6 s is complete, the rest is cut mid-mdat.
    const truncated = truncateMidFragment(fragmented, 3);
    fs.writeFileSync(file('truncated.mp4'), truncated.data);
    truncatedCompleteSeconds = truncated.completeSeconds;

    // Negative fixtures: the checks must be able to fail.
    fs.writeFileSync(file('empty.jpg'), '');
    const jpeg = fs.readFileSync(file('snapshot.jpg'));
    expect(jpeg.subarray(-2).toString('hex')).toBe('ffd9');
    fs.writeFileSync(file('truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    let seed = 12345;
    const garbage = Buffer.alloc(64 * 1024, 0).map(() => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed >> 16;
    });
    fs.writeFileSync(file('garbage.mp4'), garbage);

    fs.writeFileSync(
      file('snapshots.html'),
      '<!doctype html><html><body><img src="snapshot.jpg"><img src="snapshot.png"><img src="empty.jpg"><img src="truncated.jpg"></body></html>',
    );
    fs.writeFileSync(
      file('player.html'),
      '<!doctype html><html><body><video src="fragmented.mp4" muted></video><audio src="audio.mp3"></audio></body></html>',
    );
    server = await startStaticServer(dir);
  });

  afterAll(async () => {
    await server?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('decodes a stored JPEG and PNG', async () => {
    for (const name of ['snapshot.jpg', 'snapshot.png']) {
      const image = await browser().checkImage(server.url(name));
      expect(image, name).toEqual({
        src: server.url(name), complete: true, naturalWidth: 320, naturalHeight: 240, event: 'load', decodeError: null, transparentFraction: 0,
      });
    }
  });

  it('does not report a 0-byte JPEG as loaded', async () => {
    const image = await browser().checkImage(server.url('empty.jpg'));
    expect(image).toMatchObject({ naturalWidth: 0, naturalHeight: 0, event: 'error', transparentFraction: null });
    expect(image.decodeError).toMatch(/EncodingError/);
  });

  it('tells a JPEG truncated before EOI by its undecoded (transparent) rows', async () => {
    const image = await browser().checkImage(server.url('truncated.jpg'));
    console.info(`truncated JPEG in ${browser().version}: ${JSON.stringify(image)}`);
    // Chromium renders what it has: `load` fires, the size is known and decode()
    // resolves, so naturalWidth > 0 alone does not prove a snapshot is whole.
    expect(image).toMatchObject({ complete: true, event: 'load', naturalWidth: 320, naturalHeight: 240, decodeError: null });
    // The rows it never got stay transparent; a JPEG has no alpha of its own.
    expect(image.transparentFraction).toBeGreaterThan(0.3);
  });

  it('reports every <img> on a page, good and bad', async () => {
    const images = await browser().checkImages(server.url('snapshots.html'));
    const byName = Object.fromEntries(images.map((image) => [path.basename(new URL(image.src).pathname), image]));
    expect(Object.keys(byName)).toEqual(['snapshot.jpg', 'snapshot.png', 'empty.jpg', 'truncated.jpg']);
    expect(byName['snapshot.jpg']).toMatchObject({ complete: true, naturalWidth: 320, event: 'load', transparentFraction: 0 });
    expect(byName['snapshot.png']).toMatchObject({ complete: true, naturalWidth: 320, event: 'load', transparentFraction: 0 });
    expect(byName['empty.jpg']).toMatchObject({ naturalWidth: 0, event: 'error' });
    expect(byName['truncated.jpg']).toMatchObject({ naturalWidth: 320, event: 'load' });
    expect(byName['truncated.jpg']!.transparentFraction).toBeGreaterThan(0.3);
  });

  it('plays and seeks a fragmented H.264/AAC MP4', async () => {
    const media = await browser().checkMedia(server.url('fragmented.mp4'), { kind: 'video', seekTo: 6 });
    console.info(`fragmented.mp4: ${JSON.stringify(media)}`);
    expect(media.error).toBeNull();
    expect(media.timedOut).toEqual([]);
    expect(media).toMatchObject({ metadataLoaded: true, width: 320, height: 240 });
    expect(media.duration).toBeCloseTo(SECONDS, 0);
    expect(media.play).toMatchObject({ advanced: true, error: null });
    expect(media.seek).toMatchObject({ seeked: true, frame: { presented: true, nonBlank: true } });
    expect(media.seek!.currentTime).toBeCloseTo(6, 1);
    expect(media.seek!.play?.advanced).toBe(true);
    // Seeking went through range requests.
    expect(server.requests.some((r) => r.path === '/fragmented.mp4' && r.status === 206)).toBe(true);
  });

  it('plays and seeks a fragmented MP4 cut mid-fragment, within what was written', async () => {
    const seekTo = truncatedCompleteSeconds - 2;
    const media = await browser().checkMedia(server.url('truncated.mp4'), { kind: 'video', seekTo });
    console.info(`truncated.mp4 (complete to ${truncatedCompleteSeconds} s): ${JSON.stringify(media)}`);
    expect(media.error).toBeNull();
    expect(media).toMatchObject({ metadataLoaded: true, width: 320, height: 240 });
    expect(media.play).toMatchObject({ advanced: true, error: null });
    expect(media.seek).toMatchObject({ seeked: true, frame: { presented: true, nonBlank: true } });
    expect(media.seek!.currentTime).toBeCloseTo(seekTo, 1);
    expect(media.seek!.play?.advanced).toBe(true);
  });

  it('plays and seeks a faststart MP4', async () => {
    const media = await browser().checkMedia(server.url('faststart.mp4'), { kind: 'video', seekTo: 6 });
    expect(media.error).toBeNull();
    expect(media.timedOut).toEqual([]);
    expect(media.duration).toBeCloseTo(SECONDS, 0);
    expect(media.play).toMatchObject({ advanced: true, error: null });
    expect(media.seek).toMatchObject({ seeked: true, frame: { presented: true, nonBlank: true } });
    expect(media.seek!.currentTime).toBeCloseTo(6, 1);
  });

  it('plays and seeks an MP3', async () => {
    const media = await browser().checkMedia(server.url('audio.mp3'), { kind: 'audio', seekTo: 3 });
    expect(media.error).toBeNull();
    expect(media.timedOut).toEqual([]);
    expect(media).toMatchObject({ kind: 'audio', metadataLoaded: true, width: 0 });
    expect(media.duration).toBeCloseTo(5, 0);
    expect(media.play).toMatchObject({ advanced: true, error: null });
    expect(media.seek).toMatchObject({ seeked: true, frame: null });
    expect(media.seek!.currentTime).toBeCloseTo(3, 1);
    expect(media.seek!.play?.advanced).toBe(true);
  });

  it('reports a media error, not a throw, for a garbage .mp4', async () => {
    const media = await browser().checkMedia(server.url('garbage.mp4'), { kind: 'video', seekTo: 1, timeoutMs: 10_000 });
    expect(media.metadataLoaded).toBe(false);
    expect(media.play).toBeNull();
    expect(media.error).not.toBeNull();
    // MEDIA_ERR_SRC_NOT_SUPPORTED (4) or MEDIA_ERR_DECODE (3), never a silent pass.
    expect([3, 4]).toContain(media.error!.code);
  });

  it('plays every <video>/<audio> on a page', async () => {
    const elements = await browser().checkMediaElements(server.url('player.html'));
    expect(elements.map((element) => element.kind)).toEqual(['video', 'audio']);
    for (const element of elements) {
      expect(element.error, element.src).toBeNull();
      expect(element.metadataLoaded, element.src).toBe(true);
      expect(element.play?.advanced, element.src).toBe(true);
    }
  });
});
