import fs from 'node:fs';
import { runTracked, spawnTracked, type TrackedProcess } from './child-processes';
import { ffmpegPath, ffprobePath } from './media-tools';
import type { RtmpServer } from './rtmp-server';

export interface Publisher {
  pid: number;
  /** Exit code; null when killed by a signal. ffmpeg 4.1 exits 255 after SIGINT. */
  exited: Promise<number | null>;
  /** SIGINT (ffmpeg closes the stream properly), SIGKILL if it is still running 3 s later; resolves once it has exited. */
  stop(): Promise<void>;
  /** The tail of ffmpeg's stderr, for assertion messages. */
  output(): string;
}

function asPublisher(proc: TrackedProcess): Publisher {
  return { pid: proc.pid, exited: proc.exited, output: proc.output, stop: () => proc.stop('SIGINT', 3_000) };
}

/** Publishes `file` in real time (`-re`) to `url`, like a live encoder would. */
export function publish(file: string, url: string, opts: { loop?: boolean; seconds?: number } = {}): Publisher {
  const args = [
    '-hide_banner', '-nostdin', '-loglevel', 'error',
    '-re', ...(opts.loop ? ['-stream_loop', '-1'] : []), '-i', file,
    ...(opts.seconds !== undefined ? ['-t', String(opts.seconds)] : []),
    '-c', 'copy', '-f', 'flv', url,
  ];
  return asPublisher(spawnTracked(ffmpegPath, args));
}

export interface ServedStream extends Publisher {
  /** Where to play it. ffmpeg ignores the app and stream name a player asks for. */
  url: string;
  /**
   * Resolves once ffmpeg listens (a player connecting earlier is refused).
   * Checked without connecting, since a probe connection would use up its only player.
   */
  listening: Promise<void>;
}

/**
 * ffmpeg itself as a one-player RTMP server (`-listen 1`): unlike a real server,
 * it closes the connection at the end of the file, so the player sees a clean end.
 */
export function serveOnce(file: string, port: number): ServedStream {
  const url = `rtmp://127.0.0.1:${port}/live/s`;
  const proc = spawnTracked(ffmpegPath, [
    '-hide_banner', '-nostdin', '-loglevel', 'error',
    '-re', '-i', file, '-c', 'copy', '-f', 'flv', '-listen', '1', url,
  ]);
  const listening = waitUntilListening(port, proc);
  // Callers that don't await `listening` must not get an unhandled rejection.
  listening.catch(() => undefined);
  return { ...asPublisher(proc), url, listening };
}

async function waitUntilListening(port: number, proc: TrackedProcess): Promise<void> {
  let exitCode: number | null | undefined;
  void proc.exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + 10_000;
  while (!isListening(port)) {
    if (exitCode !== undefined) throw new Error(`ffmpeg -listen exited (code ${exitCode}): ${proc.output()}`);
    if (Date.now() > deadline) throw new Error(`ffmpeg -listen did not listen on port ${port}: ${proc.output()}`);
    await sleep(20);
  }
}

/** Whether a socket is in LISTEN state on 127.0.0.1:port, read from /proc (Linux) without connecting. */
function isListening(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const LISTEN = '0A';
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1] === local && fields[3] === LISTEN;
    });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves once a player can read `streamName` from `server`. Both servers keep
 * a player of an unpublished name waiting silently (no error, no exit), so each
 * attempt is an ffprobe bounded by `-rw_timeout`; a publisher that starts during
 * an attempt is picked up by it.
 */
export async function waitForPublishing(
  server: Pick<RtmpServer, 'url'>,
  streamName: string,
  timeoutMs = 10_000,
): Promise<void> {
  const url = server.url(streamName);
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`${url} was not readable within ${timeoutMs} ms: ${lastError}`);
    const attemptMs = Math.min(2_000, Math.max(remaining, 200));
    const result = await runTracked(
      ffprobePath,
      ['-v', 'error', '-rw_timeout', String(attemptMs * 1_000), '-show_entries', 'stream=codec_type', '-of', 'csv=p=0', url],
      // Probing a live stream itself takes up to ~3 s once data flows.
      attemptMs + 5_000,
    );
    if (result.code === 0 && result.stdout.trim() !== '') return;
    lastError = result.stderr.trim() || `ffprobe exit ${result.code}`;
    // "Connection refused" fails at once: don't spin.
    await sleep(100);
  }
}
