import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTracked } from './child-processes';
import { ffmpegPath, makeTestStream, probe, type ProbeResult } from './media-tools';
import { publish, serveOnce, waitForPublishing } from './publisher';
import { NGINX_SKIP_MESSAGE, freePort, nginxAvailable, startNginxRtmp, startNodeMediaServer, type RtmpServer } from './rtmp-server';

const stream = { width: 640, height: 360, fps: 25, gopSeconds: 1 };
let sixSeconds: string;
let workDir: string;

beforeAll(async () => {
  sixSeconds = await makeTestStream({ ...stream, seconds: 6 });
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-test-'));
});

afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

/** A killed orphan stays a zombie until init reaps it; that counts as gone. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Plays `seconds` of a live URL into a file, as a player would, and probes what arrived. */
async function recordLive(url: string, seconds: number): Promise<ProbeResult> {
  const out = path.join(workDir, `recorded-${Date.now()}.flv`);
  const result = await runTracked(
    ffmpegPath,
    ['-hide_banner', '-nostdin', '-loglevel', 'error', '-rw_timeout', '5000000', '-i', url, '-t', String(seconds), '-c', 'copy', '-f', 'flv', out],
    20_000,
  );
  expect(result.code, result.stderr).toBe(0);
  return probe(out);
}

function expectLiveRecording(recorded: ProbeResult, seconds: number): void {
  expect(recorded.streams).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ codec_type: 'video', codec_name: 'h264', width: 640, height: 360 }),
      expect.objectContaining({ codec_type: 'audio', codec_name: 'aac' }),
    ]),
  );
  expect(recorded.duration).toBeGreaterThan(seconds - 0.5);
  expect(recorded.duration).toBeLessThan(seconds + 0.5);
}

/** Publish → wait → play 2 s → stop all, and check that no process is left behind. */
async function roundTrip(server: RtmpServer): Promise<void> {
  const publisher = publish(sixSeconds, server.url('x'), { loop: true });
  try {
    await waitForPublishing(server, 'x', 10_000);
    expectLiveRecording(await recordLive(server.url('x'), 2), 2);
  } finally {
    await publisher.stop();
    await server.stop();
  }
  expect(isRunning(publisher.pid)).toBe(false);
  expect(isRunning(server.pid)).toBe(false);
}

describe('test streams', () => {
  it('are encoded once, with the requested shape, and reused', async () => {
    const info = await probe(sixSeconds);
    expect(info.format).toBe('flv');
    expect(info.streams).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ codec_type: 'video', codec_name: 'h264', width: 640, height: 360 }),
        expect.objectContaining({ codec_type: 'audio', codec_name: 'aac' }),
      ]),
    );
    expect(info.duration).toBeCloseTo(6, 0);

    const mtime = fs.statSync(sixSeconds).mtimeMs;
    expect(await makeTestStream({ ...stream, seconds: 6 })).toBe(sixSeconds);
    expect(fs.statSync(sixSeconds).mtimeMs).toBe(mtime);
    expect(fs.readdirSync(path.dirname(sixSeconds)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });
});

describe('node-media-server', () => {
  it('relays a published stream to a player, and stops without leftovers', async () => {
    const server = await startNodeMediaServer();
    expect(server.kind).toBe('node-media-server');
    expect(server.url('x')).toBe(`rtmp://127.0.0.1:${server.port}/live/x`);
    await roundTrip(server);
  });
});

if (!nginxAvailable()) console.warn(NGINX_SKIP_MESSAGE);

describe.skipIf(!nginxAvailable())('nginx-rtmp', () => {
  it('relays a published stream to a player, and stops without leftovers', async () => {
    const server = await startNginxRtmp();
    expect(server?.kind).toBe('nginx-rtmp');
    await roundTrip(server!);
  });
});

describe('serveOnce', () => {
  it('serves one player, which sees a clean end of stream', async () => {
    const threeSeconds = await makeTestStream({ ...stream, seconds: 3 });
    const served = serveOnce(threeSeconds, await freePort());
    await served.listening;
    const started = Date.now();
    const player = await runTracked(ffmpegPath, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', served.url, '-f', 'null', '-'], 15_000);
    expect(player.code, player.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(6_000);
    expect(await served.exited).toBe(0);
  });
});

describe('cleanup', () => {
  it('kills the servers and publishers of a test process that exits', async () => {
    const support = __dirname;
    // A separate process that starts a server and a publisher, prints their pids and exits without stopping them.
    const script = `
      const { startNodeMediaServer } = require(${JSON.stringify(path.join(support, 'rtmp-server'))});
      const { publish } = require(${JSON.stringify(path.join(support, 'publisher'))});
      startNodeMediaServer().then((server) => {
        const publisher = publish(${JSON.stringify(sixSeconds)}, server.url('orphan'), { loop: true });
        console.log(JSON.stringify([server.pid, publisher.pid]));
        process.exit(0);
      });
    `;
    const result = await runTracked(process.execPath, ['--import', 'tsx', '-e', script], 20_000);
    expect(result.code, result.stderr).toBe(0);
    const pids = JSON.parse(result.stdout) as number[];
    expect(pids).toHaveLength(2);
    // SIGKILL is asynchronous: give the kernel a moment.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(pids.filter(isRunning)).toEqual([]);
  });
});
