/**
 * `npm run demo` as a newcomer runs it, and its page as a person would look at it: in Chromium,
 * every image on it loads whole and every recording plays.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { prepareDemoOutput } from '../../scripts/demo';
import { describeWithBrowser, startStaticServer, type StaticServer } from '../support/browser';

describeWithBrowser('the demo page', (browser) => {
  let output: string;
  let server: StaticServer;
  let exitCode: number | null;
  let stderr = '';

  beforeAll(async () => {
    output = join(await mkdtemp(join(tmpdir(), 'demo-')), 'out');
    // As after an earlier run: the demo's page, and a file of the user's it must leave alone.
    await prepareDemoOutput(output);
    await writeFile(join(output, 'index.html'), 'the earlier run');
    await writeFile(join(output, 'notes.txt'), 'mine');
    const demo = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', '--output', output], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
    demo.stderr!.on('data', (chunk) => (stderr += chunk));
    [exitCode] = (await once(demo, 'exit')) as [number | null];
    server = await startStaticServer(output);
  }, 120_000);
  afterAll(() => server?.close());

  it('shows only whole images, latest included', async () => {
    expect(exitCode, stderr).toBe(0);
    const images = await browser().checkImages(server.url('index.html'));
    // The snapshot timeline, latest, and the recorder's first and last snapshot of each anchor.
    expect(images.length).toBeGreaterThan(10);
    for (const image of images) {
      expect(image, image.src).toMatchObject({ event: 'load', complete: true, decodeError: null, transparentFraction: 0 });
      expect(image.naturalWidth, image.src).toBeGreaterThan(0);
    }
    const result = JSON.parse(await readFile(join(output, 'result.json'), 'utf8'));
    expect(result.counts).toMatchObject({ discarded: 0, failed: 0 });
    expect(await readFile(join(output, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('plays every recording on it', async () => {
    const media = await browser().checkMediaElements(server.url('index.html'));
    // Each anchor as MP4 and as HLS: the page's hls.js plays a playlist (its src is then a
    // MediaSource) unless the browser plays HLS itself, as Debian's Chromium 156 does.
    expect(media).toHaveLength(4);
    expect(media.filter((element) => element.src.startsWith('blob:') || element.src.endsWith('/index.m3u8'))).toHaveLength(2);
    for (const element of media) {
      expect(element.error, element.src).toBeNull();
      expect(element.play?.advanced, element.src).toBe(true);
    }
    const recording = JSON.parse(await readFile(join(output, 'recording.json'), 'utf8')) as { Files: Array<{ Format: string; Status: number }> };
    expect(recording.Files.map((file) => [file.Format, file.Status]).sort()).toEqual([
      ['hls', 1],
      ['hls', 1],
      ['mp4', 1],
      ['mp4', 1],
    ]);
  });
});
