import { CALLBACK_DEADLINE_RESERVE_MS, deliverCallback, type CallbackOutcome } from '../callback';
import type { Logger } from '../log';
import type { ObjectStore } from '../storage/types';
import { spillBudget, type SpillBudget } from '../upload/growing-object';
import { describeWholeFile, type StoreTarget, type WholeFileDescription } from '../upload/leftovers';
import { claimWorkDir, reapDeadWorkDirs, releaseWorkDir, workDirEnv, type DeadWorkDir } from '../work-dirs';
import { EventSender } from './events';
import { recoverLeftovers, type StoreFor } from './recovery';

/**
 * The life of one job, the same for every function: clean up after dead invocations on this
 * instance, claim a work dir, stop the work at the deadline or on SIGTERM (or a job's own
 * limits), give up storage retries in time to report, deliver the callback, and keep the work
 * dir for the next invocation only when it holds something not stored yet.
 */

/** What the platform provides for one invocation; the core reads nothing else. */
export interface JobRuntime {
  store: ObjectStore;
  /**
   * A store for another bucket of the same cloud and credentials: used to finish the uploads of
   * an invocation that was killed on this instance. Without it, such leftovers are only removed.
   */
  storeFor?: StoreFor;
  ffmpegPath: string;
  logger: Logger;
  /** A private work dir is made below this and removed at the end. */
  workRoot: string;
  /** Epoch ms at which the platform kills the invocation. */
  deadlineAt?: number;
  /** The work stops this long before the deadline, so what is left can be stored and reported. */
  finalizeMarginMs: number;
  /** Aborted on SIGTERM: stop, store what is left, report. */
  signal?: AbortSignal;
  callbackSecret?: string;
  /** Local disk the job's spill files may use while storage fails (default 256 MiB). */
  spillLimitBytes?: number;
}

/** Why a job stopped, where the lifecycle decided it. */
export type LifecycleStopReason = 'deadline' | 'terminated';

/**
 * Storage retries end this long before the deadline; what follows is one manifest write and the
 * callback (bounded by CALLBACK_DEADLINE_RESERVE_MS), which a few seconds cover.
 */
export const STORE_GIVE_UP_BEFORE_DEADLINE_MS = 5_000;
/** Without a deadline (local runs), failing storage is given up this long after the work ended. */
const STORE_GIVE_UP_WITHOUT_DEADLINE_MS = 120_000;
/** Time given to finishing dead invocations' uploads before this job starts. */
const RECOVERY_BUDGET_MS = 20_000;
const DEFAULT_SPILL_LIMIT_BYTES = 256 * 1024 * 1024;

export interface JobDefinition<Info extends StoreTarget, Result, Reason extends string> {
  /** Names the work dirs: only dead dirs of the same kind are recovered by this job. */
  kind: string;
  requestId: string;
  /** Written into the work dir's owner file: what recovery needs (no credentials). */
  recoveryInfo: Info;
  /** The job's own recovery of what the generic pass does not cover (run after it). */
  recoverOwn?: (dead: DeadWorkDir<Info>, storeFor: StoreFor, logger: Logger, budgetEndsAt: number) => Promise<boolean>;
  run(context: JobContext<Reason>): Promise<Result>;
}

export async function runJob<Info extends StoreTarget, Result, Reason extends string>(runtime: JobRuntime, definition: JobDefinition<Info, Result, Reason>): Promise<Result> {
  const log = runtime.logger.child({ job: definition.kind });
  const storeFor = runtime.storeFor;
  // Before anything else: an ffmpeg of a killed invocation may still be pulling and writing.
  await reapDeadWorkDirs<Info>(runtime.workRoot, definition.kind, {
    logger: log,
    recover: storeFor
      ? async (dead) => {
          const budgetEndsAt = Date.now() + RECOVERY_BUDGET_MS;
          const generic = await recoverLeftovers(dead, storeFor, log, budgetEndsAt);
          const own = definition.recoverOwn ? await definition.recoverOwn(dead, storeFor, log, budgetEndsAt) : true;
          return generic && own;
        }
      : undefined,
  });
  const workDir = await claimWorkDir(runtime.workRoot, definition.kind, definition.requestId, definition.recoveryInfo);
  const context = new JobContext<Reason>(runtime, workDir, log);
  try {
    return await definition.run(context);
  } finally {
    context.dispose();
    // Files not stored yet stay for the next invocation; otherwise the dir goes.
    await releaseWorkDir(workDir, context.leftovers);
  }
}

export class JobContext<Reason extends string = string> {
  readonly env: Record<string, string>;
  readonly spill: SpillBudget;
  /** Files (and spill files) left on the instance for the next invocation to store. */
  leftovers = 0;
  private readonly storageAbort = new AbortController();
  private readonly storageTimer: NodeJS.Timeout | undefined;
  private readonly stopHandles: Array<() => void> = [];
  private workEndedAt: number | undefined;
  private reason: Reason | LifecycleStopReason | undefined;
  private stopWork: (() => void) | undefined;

  constructor(
    private readonly runtime: JobRuntime,
    readonly workDir: string,
    readonly log: Logger,
  ) {
    this.env = workDirEnv(workDir);
    this.spill = spillBudget(runtime.spillLimitBytes ?? DEFAULT_SPILL_LIMIT_BYTES);
    const deadlineAt = runtime.deadlineAt;
    if (deadlineAt !== undefined) this.storageTimer = setTimeout(() => this.storageAbort.abort(), Math.max(0, deadlineAt - STORE_GIVE_UP_BEFORE_DEADLINE_MS - Date.now()));
  }

  /** Aborted when storage retries must end (see STORE_GIVE_UP_BEFORE_DEADLINE_MS). */
  get storageSignal(): AbortSignal {
    return this.storageAbort.signal;
  }

  /** Why the work stopped (the first reason given), once it did. */
  get stopReason(): Reason | LifecycleStopReason | undefined {
    return this.reason;
  }

  /**
   * Arms the stops: the finalize margin before the deadline, SIGTERM, and the job's own limits.
   * The first stop (these or the job's own, through stop()) runs `stopWork`, once. Disarmed when
   * the work ends (workEnded) or the job ends.
   */
  armStops(stopWork: () => void, limits: Array<{ atMs: number; reason: Reason }> = []): void {
    this.stopWork = stopWork;
    const timers = limits.map(({ atMs, reason }) => setTimeout(() => this.stop(reason), Math.max(0, atMs - Date.now())));
    const deadlineAt = this.runtime.deadlineAt;
    if (deadlineAt !== undefined) timers.push(setTimeout(() => this.stop('deadline'), Math.max(0, deadlineAt - this.runtime.finalizeMarginMs - Date.now())));
    const signal = this.runtime.signal;
    const onAbort = () => this.stop('terminated');
    signal?.addEventListener('abort', onAbort, { once: true });
    this.stopHandles.push(() => {
      for (const timer of timers) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    });
    if (signal?.aborted) onAbort();
  }

  /** Stops the work for `reason`, unless it was stopped already (the first reason stands). */
  stop(reason: Reason | LifecycleStopReason): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.log.info('stopping', { reason });
    this.stopWork?.();
  }

  /** Notes why the work ended when it ended by itself (nothing left to stop); the first reason stands. */
  ended(reason: Reason | LifecycleStopReason): void {
    this.reason ??= reason;
  }

  /** The work (capture, room) is over; what follows is storing what is left and reporting. */
  workEnded(): void {
    this.workEndedAt ??= Date.now();
    for (const dispose of this.stopHandles.splice(0)) dispose();
  }

  /** Failed storage is retried until shortly before the deadline, or a while after the work ended. */
  giveUpAt(): number {
    if (this.runtime.deadlineAt !== undefined) return this.runtime.deadlineAt - STORE_GIVE_UP_BEFORE_DEADLINE_MS;
    return this.workEndedAt === undefined ? Infinity : this.workEndedAt + STORE_GIVE_UP_WITHOUT_DEADLINE_MS;
  }

  /** A local file this invocation could not store: described for the next invocation, which will. */
  async leaveForNextInvocation(filePath: string, description: WholeFileDescription): Promise<void> {
    await describeWholeFile(filePath, description);
    this.leftovers++;
  }

  /** Lifecycle events to `url` while the job runs, signed like the callback, ending before the deadline. */
  eventSender(url: string, requestId: string): EventSender {
    return new EventSender({ url, requestId, secret: this.runtime.callbackSecret, logger: this.log, deadlineAt: this.callbacksEndAt() });
  }

  /** The result to the caller's callback URL, signed, ending before the deadline. */
  async sendCallback(url: string, result: unknown): Promise<CallbackOutcome> {
    return deliverCallback(url, result, { secret: this.runtime.callbackSecret, deadlineAt: this.callbacksEndAt() });
  }

  /** Every POST to the caller is over by then, so the result still gets back to the platform. */
  private callbacksEndAt(): number | undefined {
    const deadlineAt = this.runtime.deadlineAt;
    return deadlineAt === undefined ? undefined : deadlineAt - CALLBACK_DEADLINE_RESERVE_MS;
  }

  dispose(): void {
    this.workEnded();
    clearTimeout(this.storageTimer);
  }
}
