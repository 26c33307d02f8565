/**
 * What `npm run bench:snapshot`'s capped runs rest on: a cgroup that really caps a process from its
 * first instruction (and reports the throttling), and the lag-growth figure.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { lagGrowth } from '../../scripts/bench/capped-snapshot';
import { enterCommand, openCappedGroup } from '../../scripts/bench/cgroup';

describe('lagGrowth', () => {
  const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();
  const stored = (second: number, lagMs: number) => ({ wall_time: at(second), uploaded_at: new Date(Date.parse(at(second)) + lagMs).toISOString() });

  it('stays at 0 for a steady lag, whatever its size, and ignores what was never stored', () => {
    const snapshots = [...Array.from({ length: 20 }, (_, i) => stored(i, 900)), { wall_time: at(30), uploaded_at: null }];
    expect(lagGrowth(snapshots)).toEqual({ startMs: 900, p95Ms: 0 });
  });

  it('grows with a function that falls behind', () => {
    const snapshots = Array.from({ length: 20 }, (_, i) => stored(i, 100 + i * 400));
    const growth = lagGrowth(snapshots);
    expect(growth.startMs).toBe(900);
    expect(growth.p95Ms).toBe(100 + 18 * 400 - 900);
  });
});

describe('a capped group', async () => {
  const group = await openCappedGroup(`vitest-cap-${process.pid}`, { cpus: 0.05, memoryBytes: 64 * 2 ** 20 });
  const unavailable = 'unavailable' in group ? group.unavailable : undefined;
  if (unavailable) console.warn(`capped-group test SKIPPED: ${unavailable}`);

  it.skipIf(unavailable !== undefined)('holds a busy process to its quota from its first instruction, and says how long it was throttled', async () => {
    if ('unavailable' in group) return;
    try {
      // Busy for 2 s of wall time: at 0.05 vCPU it gets about 0.1 s of CPU.
      const command = enterCommand(group, '/bin/sh', ['-c', 'end=$(( $(date +%s) + 2 )); while [ "$(date +%s)" -lt "$end" ]; do :; done']);
      const child = spawn(command.file, command.args, { stdio: 'ignore' });
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
      const usage = await group.usage();
      expect(usage.cpuSeconds).toBeGreaterThan(0.02);
      expect(usage.cpuSeconds).toBeLessThan(0.35);
      expect(usage.throttledPeriods).toBeGreaterThan(5);
      expect(usage.throttledSeconds).toBeGreaterThan(0.5);
      expect(usage.oomKills).toBe(0);
    } finally {
      await group.remove();
    }
  });
});
