import { describe, expect, it } from 'vitest';
import { realClock, VirtualClock } from '../../shared/clock';

/** Resolves after the virtual clock has fired everything it had (it stops when no timer is left). */
const settled = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('VirtualClock', () => {
  it('fires timers in order of due time, then of setting, each at exactly its time (fractions kept)', async () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    const at = (label: string) => () => fired.push(`${label}@${clock.now()}`);
    clock.setTimeout(at('b'), 20);
    clock.setTimeout(at('a'), 10.5);
    clock.setTimeout(at('c'), 20);
    const cleared = clock.setTimeout(at('never'), 5);
    clock.clearTimer(cleared);
    clock.setTimeout(at('zero'), 0);
    await settled();
    expect(fired).toEqual(['zero@0', 'a@10.5', 'b@20', 'c@20']);
  });

  it('runs an interval on its exact grid, without summing rounded periods', async () => {
    const clock = new VirtualClock();
    const times: number[] = [];
    const interval = clock.setInterval(() => {
      times.push(clock.now());
      if (times.length === 3000) clock.clearTimer(interval);
    }, 1000 / 15);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(times).toHaveLength(3000);
    for (const [n, time] of times.entries()) expect(Math.abs(time - ((n + 1) * 1000) / 15)).toBeLessThan(1e-9);
  });

  it('stands still while an idle check has work pending, and moves on once it is done', async () => {
    const clock = new VirtualClock();
    let finish!: () => void;
    let pending: Promise<void> | undefined = new Promise((resolve) => (finish = resolve));
    const remove = clock.addIdleCheck(() => pending);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 1_000);
    await settled();
    expect(fired).toEqual([]);
    expect(clock.now()).toBe(0);
    pending = undefined;
    finish();
    await settled();
    expect(fired).toEqual([1_000]);
    expect(clock.stats.waits).toBeGreaterThanOrEqual(1);
    remove();
  });

  it('lets the event loop run between two timers, so real I/O lands at the instant it belongs to', async () => {
    const clock = new VirtualClock();
    const seen: string[] = [];
    clock.setTimeout(() => {
      // Real work started at 10 ms: time waits for it before going to 20 ms.
      let done!: () => void;
      const work = new Promise<void>((resolve) => (done = resolve));
      const remove = clock.addIdleCheck(() => work);
      setTimeout(() => {
        seen.push(`io@${clock.now()}`);
        remove();
        done();
      }, 30);
    }, 10);
    clock.setTimeout(() => seen.push(`timer@${clock.now()}`), 20);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen).toEqual(['io@10', 'timer@20']);
  });
});

describe('realClock', () => {
  it('is Node’s own time and timers', async () => {
    const start = realClock.now();
    await new Promise<void>((resolve) => realClock.setTimeout(resolve, 30));
    expect(realClock.now() - start).toBeGreaterThanOrEqual(29);
    let ticks = 0;
    const interval = realClock.setInterval(() => ticks++, 5);
    await new Promise((resolve) => setTimeout(resolve, 40));
    realClock.clearTimer(interval);
    const seen = ticks;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(ticks).toBe(seen);
    expect(seen).toBeGreaterThan(2);
    expect(realClock.addIdleCheck(() => new Promise(() => {}))).toBeTypeOf('function');
  });
});
