import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The Python `npm ci` installs liteav into (scripts/install-liteav.cjs). */
export const repoRoot = resolve(__dirname, '..', '..');
export const venvPython = join(repoRoot, '.venv', 'bin', 'python');
export const LITEAV_VERSION = '13.2.0.24212';

/**
 * Throws, naming the missing step, unless .venv/ has liteav: the real-SDK tests fail rather than
 * skip when the set-up could not install it (offline, no Python).
 */
export function requireLiteav(): void {
  const missing = `liteav ${LITEAV_VERSION} is not installed in .venv/: \`npm ci\` installs it (its postinstall, scripts/install-liteav.cjs, needs Linux, python3 3.8-3.14 with venv, and PyPI; it printed one line saying what it skipped)`;
  if (!existsSync(venvPython)) throw new Error(missing);
  const probe = spawnSync(venvPython, ['-c', "import importlib.metadata as m, liteav; print(m.version('liteav'))"], { encoding: 'utf8', timeout: 30_000 });
  if (probe.status !== 0 || probe.stdout.trim() !== LITEAV_VERSION) throw new Error(`${missing} (${(probe.stderr || probe.stdout).trim().split('\n').pop()})`);
}

/** Whether this process may make network namespaces (`unshare -n` needs root or CAP_SYS_ADMIN). */
export function requireNetworkNamespaces(): void {
  const probe = spawnSync('unshare', ['-n', 'true'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.status !== 0) throw new Error(`these tests run the SDK in a loopback-only network namespace, and \`unshare -n\` failed here (run them as root): ${probe.stderr || probe.error?.message}`);
}

export interface NamespacedRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `command` in a new network namespace that has only loopback (up): the SDK cannot reach any
 * server, as a function without a route to TRTC. `onStderr` sees output as it comes.
 */
export function runInLoopbackNamespace(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs: number; onStderr?: (text: string) => void; onSpawn?: (pid: number) => void },
): Promise<NamespacedRun> {
  const started = Date.now();
  const child = spawn('unshare', ['-n', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', command, ...args], {
    cwd: repoRoot,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid) options.onSpawn?.(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    options.onStderr?.(chunk);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  return new Promise((resolvePromise) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}

/** Resident memory of a process in bytes (0 once it is gone). */
export function rssOf(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
