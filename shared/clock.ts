import { performance } from 'node:perf_hooks';

/**
 * The time a room and a recorder run on. `realClock` is Node's own (performance.now() and its
 * timers): what production, and everything that does not ask for another clock, uses.
 *
 * `VirtualClock` runs faster than real time for benchmarks and tests, deterministically: its time
 * stands still while real work is going on and jumps to the next timer when everything is idle.
 * What "idle" means is said by whoever waits on real work, with `addIdleCheck`: the room
 * simulator's feeds while ffmpeg has not written the next frame yet, the recorder while its
 * encoder has not taken what it was given. So each frame arrives exactly at its time, each tick
 * runs exactly at its time, and nothing is dropped because the encoder fell behind: the speed is
 * whatever the real processes manage, and timer jitter never reaches the measurement.
 */
export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Calls `callback` every `ms`, on the grid start + n·ms (the real clock: as Node's setInterval). */
  setInterval(callback: () => void, ms: number): ClockTimer;
  /** Cancels a timeout or an interval; undefined is ignored. */
  clearTimer(timer: ClockTimer | undefined): void;
  /**
   * Real work that time must not run ahead of: before moving on, a virtual clock calls `check`,
   * and waits for the promise it returns (undefined: nothing pending), then asks again. The real
   * clock never waits (time runs on regardless). Returns the function that removes the check.
   */
  addIdleCheck(check: IdleCheck): () => void;
}

export type IdleCheck = () => Promise<unknown> | undefined;

/** A timer of either clock; only its clock can clear it. */
export type ClockTimer = { readonly clockTimer: true } | NodeJS.Timeout;

const noop = () => {};

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  setInterval: (callback, ms) => setInterval(callback, ms),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
  addIdleCheck: () => noop,
};

interface VirtualTimer {
  readonly clockTimer: true;
  due: number;
  /** An interval's n-th time is start + n·period, computed so (no sum of rounded periods). */
  readonly start: number;
  fired: number;
  /** Order among timers due at the same instant: the order they were set in. */
  seq: number;
  readonly period: number | undefined;
  readonly callback: () => void;
  cancelled: boolean;
}

export interface VirtualClockStats {
  /** Timers fired. */
  steps: number;
  /** Times time stood still for real work, and the real ms spent so. */
  waits: number;
  waitedMs: number;
}

/**
 * Time that moves only when nothing real is pending (see Clock). Timers fire one at a time, in
 * order of due time, then of setting; between two, the event loop runs (I/O callbacks included)
 * and every idle check must be satisfied. Fractional milliseconds are kept as they are.
 */
export class VirtualClock implements Clock {
  private time: number;
  private seq = 0;
  /** A binary min-heap on (due, seq); cleared timers stay in it, marked, until they come up. */
  private readonly heap: VirtualTimer[] = [];
  private readonly checks = new Set<IdleCheck>();
  private running = false;
  readonly stats: VirtualClockStats = { steps: 0, waits: 0, waitedMs: 0 };

  constructor(startMs = 0) {
    this.time = startMs;
  }

  readonly now = (): number => this.time;

  setTimeout(callback: () => void, ms: number): ClockTimer {
    return this.schedule(callback, ms, undefined);
  }

  setInterval(callback: () => void, ms: number): ClockTimer {
    // As Node: a period below 1 ms is 1 ms (a 0 period would never let time move).
    return this.schedule(callback, ms, Math.max(1, ms));
  }

  clearTimer(timer: ClockTimer | undefined): void {
    if (timer && 'clockTimer' in timer) (timer as VirtualTimer).cancelled = true;
  }

  addIdleCheck(check: IdleCheck): () => void {
    this.checks.add(check);
    return () => this.checks.delete(check);
  }

  private schedule(callback: () => void, ms: number, period: number | undefined): VirtualTimer {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer: VirtualTimer = { clockTimer: true, due: this.time + (period ?? delay), start: this.time, fired: 0, seq: this.seq++, period, callback, cancelled: false };
    this.push(timer);
    if (!this.running) {
      this.running = true;
      void this.run();
    }
    return timer;
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        await this.settle();
        const timer = this.pop();
        if (!timer) return;
        this.time = Math.max(this.time, timer.due);
        this.stats.steps++;
        if (timer.period !== undefined) {
          timer.due = timer.start + (++timer.fired + 1) * timer.period;
          timer.seq = this.seq++;
          this.push(timer);
        }
        try {
          timer.callback();
        } catch (error) {
          // As a throwing Node timer: an uncaught exception, not a stopped clock.
          process.nextTick(() => {
            throw error;
          });
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Lets the event loop run once, then waits until no idle check has anything pending. */
  private async settle(): Promise<void> {
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const pending: Array<Promise<unknown>> = [];
      for (const check of this.checks) {
        const work = check();
        if (work) pending.push(work);
      }
      if (pending.length === 0) return;
      const waitStart = performance.now();
      this.stats.waits++;
      await Promise.all(pending);
      this.stats.waitedMs += performance.now() - waitStart;
    }
  }

  private pop(): VirtualTimer | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      const last = this.heap.pop()!;
      if (this.heap.length > 0) {
        this.heap[0] = last;
        this.siftDown(0);
      }
      if (!top.cancelled) return top;
    }
    return undefined;
  }

  private push(timer: VirtualTimer): void {
    this.heap.push(timer);
    let i = this.heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(this.heap[i]!, this.heap[parent]!)) break;
      [this.heap[i], this.heap[parent]] = [this.heap[parent]!, this.heap[i]!];
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < n && this.before(this.heap[left]!, this.heap[smallest]!)) smallest = left;
      if (right < n && this.before(this.heap[right]!, this.heap[smallest]!)) smallest = right;
      if (smallest === i) return;
      [this.heap[i], this.heap[smallest]] = [this.heap[smallest]!, this.heap[i]!];
      i = smallest;
    }
  }

  private before(a: VirtualTimer, b: VirtualTimer): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }
}
