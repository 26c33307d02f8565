import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { FfmpegProcess, liveFfmpegCount } from '../../shared/ffmpeg/supervisor';
import { makeTestStream } from '../support/media-tools';
import { isProcessRunning } from '../support/process';
import { publish, waitForPublishing } from '../support/publisher';
import { startNodeMediaServer } from '../support/rtmp-server';

const ffmpegPath = resolveFfmpegPath();
const progressArgs = ['-hide_banner', '-nostats', '-progress', 'pipe:1'];
const liveTestSource = ['-re', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=10'];

/** A TCP server that accepts and then says nothing: ffmpeg blocks in a read forever. */
let silentServer: Server;
let silentPort: number;
const sockets: Socket[] = [];

beforeAll(async () => {
  silentServer = createServer((socket) => sockets.push(socket));
  silentServer.listen(0, '127.0.0.1');
  await once(silentServer, 'listening');
  silentPort = (silentServer.address() as { port: number }).port;
});
afterAll(() => {
  for (const socket of sockets) socket.destroy();
  silentServer.close();
});


describe('FfmpegProcess', () => {
  it('reads -progress and stops gracefully with q', async () => {
    const frames: number[] = [];
    const ffmpeg = new FfmpegProcess({
      binary: ffmpegPath,
      args: [...progressArgs, ...liveTestSource, '-f', 'null', '-'],
      liveness: { firstPacketTimeoutMs: 10_000, stallTimeoutMs: 10_000 },
      onProgress: (p) => frames.push(p.frame),
    });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const exit = await ffmpeg.stop();
    expect(exit).toMatchObject({ code: 0, stopCause: 'requested', escalation: 'quit' });
    expect(frames.length).toBeGreaterThan(1);
    expect(exit.frames).toBeGreaterThan(5);
    expect(isProcessRunning(ffmpeg.pid!)).toBe(false);
  });

  it('gives up on a source that never sends a frame', async () => {
    const started = Date.now();
    const ffmpeg = new FfmpegProcess({
      binary: ffmpegPath,
      args: [...progressArgs, '-i', `rtmp://127.0.0.1:${silentPort}/live/none`, '-f', 'null', '-'],
      liveness: { firstPacketTimeoutMs: 1_500, stallTimeoutMs: 60_000 },
    });
    const exit = await ffmpeg.exited;
    expect(exit.stopCause).toBe('no-first-frame');
    expect(exit.frames).toBe(0);
    expect(['sigterm', 'sigint']).toContain(exit.escalation);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('escalates past q when ffmpeg is blocked in a read', async () => {
    const ffmpeg = new FfmpegProcess({
      binary: ffmpegPath,
      args: [...progressArgs, '-i', `rtmp://127.0.0.1:${silentPort}/live/none`, '-f', 'null', '-'],
      liveness: { firstPacketTimeoutMs: 60_000, stallTimeoutMs: 60_000 },
      quitGraceMs: 300,
      termGraceMs: 1_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const exit = await ffmpeg.stop();
    expect(exit.stopCause).toBe('requested');
    expect(['sigterm', 'sigint']).toContain(exit.escalation);
    expect(isProcessRunning(ffmpeg.pid!)).toBe(false);
  });

  it('ends a reader stalled mid-stream gracefully, so decoded frames are flushed, not killed', async () => {
    const [file, server] = await Promise.all([
      makeTestStream({ width: 320, height: 180, fps: 25, gopSeconds: 1, seconds: 4 }),
      startNodeMediaServer(),
    ]);
    try {
      const publisher = publish(file, server.url('stall'));
      await waitForPublishing(server, 'stall', 15_000);
      const snapshots: string[] = [];
      const ffmpeg = new FfmpegProcess({
        binary: ffmpegPath,
        args: [...progressArgs, '-skip_frame', 'nokey', '-i', server.url('stall'), '-vf', 'showinfo', '-f', 'null', '-'],
        liveness: { firstPacketTimeoutMs: 10_000, stallTimeoutMs: 1_500 },
        onStderrLine: (line) => line.includes('pts_time') && snapshots.push(line),
      });
      await publisher.exited;
      const seenWhenPublisherLeft = snapshots.length;
      const exit = await ffmpeg.exited;
      expect(exit).toMatchObject({ stopCause: 'stalled', escalation: 'sigint', code: 255, signal: null });
      // The decoder held keyframes back (B-frame reorder); a graceful stop flushed them.
      expect(snapshots.length).toBeGreaterThan(seenWhenPublisherLeft);
    } finally {
      await server.stop();
    }
  });

  it('reports a binary that cannot start', async () => {
    const exit = await new FfmpegProcess({ binary: '/nonexistent/ffmpeg', args: [], liveness: { firstPacketTimeoutMs: 1_000, stallTimeoutMs: 1_000 } }).exited;
    expect(exit.spawnError?.message).toMatch(/ENOENT/);
    expect(liveFfmpegCount()).toBe(0);
  });

  it.each(['exit', 'throw'])('leaves no orphan ffmpeg when its host process dies (%s)', async (how) => {
    const host = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/orphan-host.ts', how], { stdio: ['ignore', 'pipe', 'pipe'] });
    const [pidLine] = (await once(host.stdout!, 'data')) as [Buffer];
    const pid = Number(pidLine.toString().trim());
    expect(isProcessRunning(pid)).toBe(true);
    await once(host, 'exit');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(isProcessRunning(pid)).toBe(false);
  });
});
