import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from './log';

/**
 * Per-invocation work dirs that survive a crash of their invocation. Each dir names its owner
 * (pid and the process's start time, so a reused pid is not mistaken for the owner), and every
 * ffmpeg started for it carries `MEDIA_WORK_DIR=<dir>` in its environment. The next invocation
 * on the instance finds the dirs whose owner is gone, kills their ffmpegs, hands what they hold
 * to a recovery step (upload what was captured) and removes them. A live owner's dir — another
 * invocation running now, in this process or another — is never touched.
 */

export const WORK_DIR_ENV = 'MEDIA_WORK_DIR';
const OWNER_FILE = 'owner.json';
/** A dir without an owner file may be being created right now; past this age it is abandoned. */
const UNCLAIMED_GRACE_MS = 60_000;
/** A dead dir whose recovery keeps failing is given up after this long (its bucket may be gone). */
const RECOVERY_GIVE_UP_MS = 24 * 3600_000;

export interface WorkDirOwner<R = unknown> {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the pid, identifies the process across pid reuse. */
  pidStart: string | null;
  requestId: string;
  kind: string;
  createdAt: string;
  /** What the recovery step needs to finish the dead invocation's uploads (no credentials). */
  recovery?: R;
  /** The invocation ended but left files it could not store. */
  released?: boolean;
}

export async function claimWorkDir<R>(root: string, kind: string, requestId: string, recovery?: R): Promise<string> {
  await mkdir(root, { recursive: true });
  const dir = join(root, `${kind}-${process.pid}-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  const owner: WorkDirOwner<R> = { pid: process.pid, pidStart: await processStart(process.pid), requestId, kind, createdAt: new Date().toISOString(), recovery };
  await writeFile(join(dir, OWNER_FILE), JSON.stringify(owner));
  return dir;
}

/**
 * Ends this invocation's use of its dir. With files still to store (`pending` > 0) the dir is
 * kept and marked released, so the next invocation treats it as dead and recovers it; else it
 * is removed.
 */
export async function releaseWorkDir(dir: string, pending: number): Promise<void> {
  if (pending === 0) {
    await rm(dir, { recursive: true, force: true });
    return;
  }
  const ownerPath = join(dir, OWNER_FILE);
  const owner = JSON.parse(await readFile(ownerPath, 'utf8')) as WorkDirOwner;
  await writeFile(ownerPath, JSON.stringify({ ...owner, released: true }));
}

/** The environment that ties an ffmpeg to its work dir. */
export const workDirEnv = (dir: string): Record<string, string> => ({ [WORK_DIR_ENV]: dir });

export interface DeadWorkDir<R> {
  dir: string;
  /** Undefined for a dir abandoned before its owner file was written. */
  owner?: WorkDirOwner<R>;
  ageMs: number;
}

export interface ReapOptions<R> {
  logger: Logger;
  /**
   * Finishes what a dead invocation left (uploads its files). Resolves true when nothing is left
   * that still needs storing; the dir is then removed. False keeps it for a later invocation.
   */
  recover?: (dead: DeadWorkDir<R>) => Promise<boolean>;
}

export interface ReapReport {
  /** ffmpeg processes of dead invocations that were still running and were killed. */
  killed: number[];
  removed: string[];
  kept: string[];
}

/** Finds the dead dirs of `kind` under `root`, kills their ffmpegs, recovers and removes them. */
export async function reapDeadWorkDirs<R>(root: string, kind: string, options: ReapOptions<R>): Promise<ReapReport> {
  const report: ReapReport = { killed: [], removed: [], kept: [] };
  const dead = await findDeadWorkDirs<R>(root, kind);
  if (dead.length === 0) return report;
  // First, before anything else: an orphaned ffmpeg may still be pulling a stream and writing.
  report.killed = await killProcessesOf(new Set(dead.map((d) => d.dir)));
  for (const entry of dead) {
    let done = true;
    if (options.recover && entry.owner) {
      done = await options.recover(entry).catch((error: unknown) => {
        options.logger.warn('recovering a dead invocation failed', { dir: entry.dir, error });
        return false;
      });
    }
    if (done || entry.ageMs > RECOVERY_GIVE_UP_MS) {
      await rm(entry.dir, { recursive: true, force: true });
      report.removed.push(entry.dir);
    } else {
      report.kept.push(entry.dir);
    }
  }
  options.logger.info('cleaned up after dead invocations', { ...report });
  return report;
}

async function findDeadWorkDirs<R>(root: string, kind: string): Promise<Array<DeadWorkDir<R>>> {
  const names = await readdir(root).catch(() => [] as string[]);
  const dead: Array<DeadWorkDir<R>> = [];
  for (const name of names) {
    if (!name.startsWith(`${kind}-`)) continue;
    const dir = join(root, name);
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    const ageMs = Date.now() - info.mtimeMs;
    const owner = await readFile(join(dir, OWNER_FILE), 'utf8').then((text) => JSON.parse(text) as WorkDirOwner<R>, () => undefined);
    if (owner ? await isAlive(owner) : ageMs < UNCLAIMED_GRACE_MS) continue;
    dead.push({ dir, owner, ageMs });
  }
  return dead;
}

async function isAlive(owner: WorkDirOwner): Promise<boolean> {
  if (owner.released) return false;
  if (owner.pid === process.pid) return owner.pidStart === (await processStart(process.pid));
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: it exists but is someone else's, so it is not our dead invocation either.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = await readProcStat(owner.pid);
  // A killed invocation stays a zombie until its parent reaps it: it exists, but is dead.
  if (stat && (stat.state === 'Z' || stat.state === 'X')) return false;
  const start = stat?.start ?? null;
  return start === null || owner.pidStart === null || start === owner.pidStart;
}

/** The process's start time in clock ticks since boot, or null where /proc is not available. */
async function processStart(pid: number): Promise<string | null> {
  return (await readProcStat(pid))?.start ?? null;
}

/** State (R, S, Z, ...) and start time of a process, from /proc/<pid>/stat. */
async function readProcStat(pid: number): Promise<{ state: string; start: string | null } | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (text === null) return null;
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', start: fields[19] ?? null };
}

/** SIGKILLs every process whose environment ties it to one of `dirs`; returns their pids. */
async function killProcessesOf(dirs: Set<string>): Promise<number[]> {
  const killed: number[] = [];
  const entries = await readdir('/proc').catch(() => [] as string[]);
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'latin1').catch(() => '');
    const owned = environ.split('\0').some((line) => line.startsWith(`${WORK_DIR_ENV}=`) && dirs.has(line.slice(WORK_DIR_ENV.length + 1)));
    if (!owned) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
      killed.push(Number(entry));
    } catch {
      // Gone already.
    }
  }
  return killed;
}
