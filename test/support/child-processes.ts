import { spawn, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';

/**
 * Every long-lived process the harness starts goes through here, so that none
 * (ffmpeg, node-media-server, nginx) outlives the test process.
 */

export interface TrackedProcess {
  pid: number;
  /** Exit code; null when the process was ended by a signal. */
  exited: Promise<number | null>;
  /** The last few KB of stderr, for error messages. */
  output(): string;
  /** Sends `signal` to the process group, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const OUTPUT_TAIL_CHARS = 8_000;
/** Running pids, with the temp dir to delete once each is gone. */
const live = new Map<number, string | undefined>();
let hooksInstalled = false;

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    // Children are spawned detached, so each leads its own process group.
    process.kill(-pid, signal);
  } catch {
    // ESRCH: already gone.
  }
}

function removeDir(dir: string | undefined): void {
  try {
    if (dir) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // Best effort: it only holds a server's config, logs and store.
  }
}

function killAllNow(): void {
  for (const [pid, dir] of live) {
    signalGroup(pid, 'SIGKILL');
    removeDir(dir);
  }
  live.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllNow();
      // Our listener replaced the default "terminate" action; restore it unless
      // someone else (e.g. the test runner) handles the signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

export function spawnTracked(
  command: string,
  args: readonly string[],
  options: Pick<SpawnOptions, 'cwd' | 'env'> & {
    stdout?: 'ignore' | 'capture' | { file: string };
    /** Deleted once the process has exited, also when the test process exits first. */
    tempDir?: string;
  } = {},
): TrackedProcess & { stdout(): string } {
  installExitHooks();
  const stdoutFd = typeof options.stdout === 'object' ? fs.openSync(options.stdout.file, 'a') : undefined;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    // Pipes are always drained: an unread pipe would eventually block the child.
    stdio: ['ignore', stdoutFd ?? (options.stdout === 'capture' ? 'pipe' : 'ignore'), 'pipe'],
  });
  if (stdoutFd !== undefined) fs.closeSync(stdoutFd);
  if (child.pid === undefined) {
    // Spawning failed (e.g. ENOENT); the reason only arrives as an 'error' event.
    child.once('error', () => undefined);
    throw new Error(`cannot start ${command}`);
  }
  const pid = child.pid;
  live.set(pid, options.tempDir);

  let stdout = '';
  let tail = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-OUTPUT_TAIL_CHARS);
  });

  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (error) => {
      tail += `\n${error.message}`;
    });
    // 'close' (not 'exit') so the captured output is complete when we resolve.
    child.once('close', (code) => {
      live.delete(pid);
      removeDir(options.tempDir);
      resolve(code);
    });
  });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 3_000): Promise<void> => {
    if (!live.has(pid)) {
      await exited;
      return;
    }
    signalGroup(pid, signal);
    const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  return { pid, exited, output: () => tail, stdout: () => stdout, stop };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived command to completion, killing it after `timeoutMs`. */
export async function runTracked(command: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  const proc = spawnTracked(command, args, { stdout: 'capture' });
  const timer = setTimeout(() => void proc.stop('SIGKILL'), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: proc.stdout(), stderr: proc.output() };
}
