import { readdirSync, readFileSync } from 'node:fs';

/**
 * Whether a process is alive. A killed child whose parent is gone can linger as a
 * zombie until init reaps it (some sandboxes' init never does); a zombie runs nothing.
 */
export function isProcessRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Pids of running processes whose command line contains `needle`. */
export function runningProcessesMatching(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(needle) && isProcessRunning(Number(entry))) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** Running processes tied to a work dir under `root` through their environment (every ffmpeg the functions start). */
export async function processesUnderWorkRoot(root: string): Promise<number[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const { WORK_DIR_ENV } = await import('../../shared/work-dirs');
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'latin1').catch(() => '');
    if (environ.split('\0').some((line) => line.startsWith(`${WORK_DIR_ENV}=${root}/`)) && isProcessRunning(Number(entry))) found.push(Number(entry));
  }
  return found;
}

/** Runs `work` while recording what is written to stderr (JSON log lines among it), still passing it through. */
export async function capturingStderr<T>(work: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    lines.push(String(chunk));
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  try {
    return { value: await work(), lines };
  } finally {
    process.stderr.write = write;
  }
}
