/**
 * A CPU and memory cap for one benchmark contender, as FC applies its instance sizes: a CFS quota
 * (0.05 vCPU = 5 ms of every 100 ms) and a memory limit with no swap, over the process and all its
 * children. cgroup v1 (cpu, cpuacct, memory hierarchies) or v2 (unified, cpu and memory
 * controllers), as root. `openCappedGroup` explains why when neither can be made; callers skip.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Cap {
  /** vCPUs: the CFS quota over a 100 ms period. */
  cpus: number;
  memoryBytes: number;
}

export interface CapUsage {
  cpuSeconds: number;
  /** Time the group wanted to run but had used its quota. */
  throttledSeconds: number;
  /** CFS periods in which the group ran, and those of them in which it ran out of quota. */
  periods: number;
  throttledPeriods: number;
  /** Highest memory charged to the group (process memory and the page cache it wrote). */
  peakMemoryBytes: number;
  /** Anonymous memory (heaps, buffers) now: what cannot be reclaimed short of killing. */
  anonymousBytes: number;
  oomKills: number;
}

export interface CappedGroup {
  readonly version: 1 | 2;
  /** `cgroup.procs` files a process writes its pid to, to enter the group (see `enterCommand`). */
  readonly procsFiles: string[];
  usage(): Promise<CapUsage>;
  remove(): Promise<void>;
}

const PERIOD_US = 100_000;
const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * A command that enters `group` and then execs `command`: the process is capped from its first
 * instruction, so its start-up counts too. Arguments pass as positional parameters, never as
 * shell text.
 */
export function enterCommand(group: CappedGroup, command: string, args: string[]): { file: string; args: string[] } {
  const script = `for f in ${group.procsFiles.map((_, i) => `"$${i + 1}"`).join(' ')}; do echo $$ > "$f" || exit 97; done; shift ${group.procsFiles.length}; exec "$@"`;
  return { file: '/bin/sh', args: ['-c', script, 'enter-cgroup', ...group.procsFiles, command, ...args] };
}

/** A new group with `cap`, or the reason none can be made here. */
export async function openCappedGroup(name: string, cap: Cap): Promise<CappedGroup | { unavailable: string }> {
  if (process.getuid?.() !== 0) return { unavailable: 'capping needs root (cgroups)' };
  try {
    if (existsSync(join(CGROUP_ROOT, 'cpu', 'cpu.cfs_quota_us')) && existsSync(join(CGROUP_ROOT, 'memory', 'memory.limit_in_bytes'))) return await openV1(name, cap);
    const controllers = await readFile(join(CGROUP_ROOT, 'cgroup.controllers'), 'utf8').catch(() => '');
    if (/\bcpu\b/.test(controllers) && /\bmemory\b/.test(controllers)) return await openV2(name, cap);
    return { unavailable: `neither cgroup v1 cpu+memory hierarchies nor a v2 hierarchy with cpu and memory controllers under ${CGROUP_ROOT}` };
  } catch (error) {
    return { unavailable: `could not make a cgroup: ${(error as Error).message}` };
  }
}

function quotaUs(cap: Cap): number {
  return Math.max(1000, Math.round(cap.cpus * PERIOD_US));
}

async function openV1(name: string, cap: Cap): Promise<CappedGroup> {
  const cpu = join(CGROUP_ROOT, 'cpu', name);
  const cpuacct = join(CGROUP_ROOT, 'cpuacct', name);
  const memory = join(CGROUP_ROOT, 'memory', name);
  const hasCpuacct = existsSync(join(CGROUP_ROOT, 'cpuacct', 'cpuacct.usage'));
  // Where cpu and cpuacct are one hierarchy (symlinked), the same dir twice is harmless.
  const dirs = hasCpuacct ? [cpu, cpuacct, memory] : [cpu, memory];
  for (const dir of dirs) await mkdir(dir, { recursive: true });
  await writeFile(join(cpu, 'cpu.cfs_period_us'), String(PERIOD_US));
  await writeFile(join(cpu, 'cpu.cfs_quota_us'), String(quotaUs(cap)));
  await writeFile(join(memory, 'memory.limit_in_bytes'), String(cap.memoryBytes));
  // No swap beyond the limit, where the kernel accounts it.
  if (existsSync(join(memory, 'memory.memsw.limit_in_bytes'))) await writeFile(join(memory, 'memory.memsw.limit_in_bytes'), String(cap.memoryBytes));
  return {
    version: 1,
    procsFiles: dirs.map((dir) => join(dir, 'cgroup.procs')),
    async usage() {
      const cpuStat = parseStat(await readFile(join(cpu, 'cpu.stat'), 'utf8'));
      const usageNs = hasCpuacct ? Number((await readFile(join(cpuacct, 'cpuacct.usage'), 'utf8')).trim()) : Number.NaN;
      const oom = parseStat(await readFile(join(memory, 'memory.oom_control'), 'utf8'));
      const memoryStat = parseStat(await readFile(join(memory, 'memory.stat'), 'utf8'));
      return {
        cpuSeconds: usageNs / 1e9,
        throttledSeconds: (cpuStat.throttled_time ?? 0) / 1e9,
        periods: cpuStat.nr_periods ?? 0,
        throttledPeriods: cpuStat.nr_throttled ?? 0,
        peakMemoryBytes: Number((await readFile(join(memory, 'memory.max_usage_in_bytes'), 'utf8')).trim()),
        anonymousBytes: memoryStat.total_rss ?? memoryStat.rss ?? 0,
        oomKills: oom.oom_kill ?? 0,
      };
    },
    async remove() {
      for (const dir of dirs) await removeGroupDir(dir);
    },
  };
}

async function openV2(name: string, cap: Cap): Promise<CappedGroup> {
  await writeFile(join(CGROUP_ROOT, 'cgroup.subtree_control'), '+cpu +memory');
  const dir = join(CGROUP_ROOT, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'cpu.max'), `${quotaUs(cap)} ${PERIOD_US}`);
  await writeFile(join(dir, 'memory.max'), String(cap.memoryBytes));
  if (existsSync(join(dir, 'memory.swap.max'))) await writeFile(join(dir, 'memory.swap.max'), '0');
  return {
    version: 2,
    procsFiles: [join(dir, 'cgroup.procs')],
    async usage() {
      const cpuStat = parseStat(await readFile(join(dir, 'cpu.stat'), 'utf8'));
      const events = parseStat(await readFile(join(dir, 'memory.events'), 'utf8'));
      const memoryStat = parseStat(await readFile(join(dir, 'memory.stat'), 'utf8'));
      // memory.peak came with Linux 5.19; before it, the current use is the best we have.
      const peak = await readFile(join(dir, 'memory.peak'), 'utf8').catch(() => readFile(join(dir, 'memory.current'), 'utf8'));
      return {
        cpuSeconds: (cpuStat.usage_usec ?? Number.NaN) / 1e6,
        throttledSeconds: (cpuStat.throttled_usec ?? 0) / 1e6,
        periods: cpuStat.nr_periods ?? 0,
        throttledPeriods: cpuStat.nr_throttled ?? 0,
        peakMemoryBytes: Number(peak.trim()),
        anonymousBytes: memoryStat.anon ?? 0,
        oomKills: events.oom_kill ?? 0,
      };
    },
    async remove() {
      await removeGroupDir(dir);
    },
  };
}

/** `key value` lines (cpu.stat, memory.oom_control, memory.events). */
function parseStat(text: string): Record<string, number> {
  const stat: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined) stat[key] = Number(value);
  }
  return stat;
}

/** A group can only be removed once its processes are gone; they may take a moment to be reaped. */
async function removeGroupDir(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
