import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Duplex } from 'node:stream';
import { LivenessWatch, type LivenessLimits } from '../liveness';
import { ProgressParser, type FfmpegProgress } from './progress';

/** Why the supervisor, rather than ffmpeg itself, ended the process. */
export type StopCause = 'requested' | 'stalled' | 'no-first-frame';

export interface FfmpegExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the supervisor stopped ffmpeg; absent when ffmpeg exited on its own. */
  stopCause?: StopCause;
  /** The harshest step the stop needed. */
  escalation: 'none' | 'quit' | 'sigterm' | 'sigint' | 'sigkill';
  /** Highest progress frame count seen (0: never got a frame). */
  frames: number;
  /** Last stderr lines, for error messages. May contain the input URL: redact before echoing. */
  stderrTail: string[];
  spawnError?: Error;
}

export interface SupervisorOptions {
  binary: string;
  args: string[];
  /**
   * For network inputs. Before the first frame: stop when none has arrived after
   * `firstPacketTimeoutMs`; after it: stop when the frame count has not moved for
   * `stallTimeoutMs`. Leave both out for inputs we feed or read from disk: no watchdog.
   */
  liveness?: LivenessLimits;
  /** How long each gentle step may take before the next, harsher one. */
  quitGraceMs?: number;
  termGraceMs?: number;
  onProgress?: (progress: FfmpegProgress) => void;
  onStderrLine?: (line: string) => void;
  /** Extra pipes at fds 3, 4, …: `-i pipe:3` inputs we write, or `pipe:3` outputs we read. */
  extraPipes?: number;
  /**
   * `flush` (default): stop() asks ffmpeg to finish its outputs (q, then signals). `discard`: its
   * output no longer matters once we stop it (a network reader whose packets we relay), so stop()
   * kills it at once instead of waiting seconds on a read that may never return.
   */
  stopMode?: 'flush' | 'discard';
  /**
   * Added to ffmpeg's environment. The work dir is passed as MEDIA_WORK_DIR so that the next
   * invocation can find and stop an ffmpeg whose invocation was killed (see shared/work-dirs.ts).
   */
  env?: Record<string, string>;
}

const STDERR_TAIL_LINES = 30;
/** Time for a SIGTERM alone to work (ffmpeg not blocked in a read) before the second signal. */
const SECOND_SIGNAL_DELAY_MS = 500;

/** Every ffmpeg this process started and that has not exited yet. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last line of defence: if the host process dies, take its ffmpegs with it.
  process.once('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
  });
}

/** One line for results and logs: the exit and ffmpeg's last words. Redact before echoing a URL. */
export function describeExit(exit: FfmpegExit): string {
  const detail = exit.spawnError?.message ?? exit.stderrTail.slice(-3).join(' | ');
  return `ffmpeg exited with ${exit.code ?? exit.signal}${detail ? `: ${detail}` : ''}`;
}

/** Number of ffmpeg processes this module has started that are still running. */
export function liveFfmpegCount(): number {
  return liveChildren.size;
}

/**
 * The single owner of an ffmpeg process: spawns it without a shell, reads
 * `-progress` from stdout, detects stalls, and stops it gracefully
 * (`q` on stdin, then SIGTERM, then SIGKILL). The args must include `-progress pipe:1`.
 */
export class FfmpegProcess {
  readonly exited: Promise<FfmpegExit>;
  private readonly child: ChildProcess;
  private frames = 0;
  private stopCause: StopCause | undefined;
  private escalation: FfmpegExit['escalation'] = 'none';
  private stopping: Promise<FfmpegExit> | undefined;
  private readonly stderrTail: string[] = [];
  private readonly watchdog: LivenessWatch | undefined;
  private hasExited = false;

  constructor(private readonly options: SupervisorOptions) {
    installExitHook();
    const extraPipes = Array.from({ length: options.extraPipes ?? 0 }, () => 'pipe' as const);
    this.child = spawn(options.binary, options.args, {
      stdio: ['pipe', 'pipe', 'pipe', ...extraPipes],
      shell: false,
      env: options.env ? { ...process.env, ...options.env } : undefined,
    });
    // A pipe ffmpeg has closed (it exited) must not crash the writer.
    for (const stream of this.child.stdio.slice(3)) stream?.on('error', () => {});
    liveChildren.add(this.child);
    // ffmpeg may exit before reading its stdin; a late 'q' must not crash us.
    this.child.stdin?.on('error', () => {});

    const progress = new ProgressParser();
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const block = progress.push(line);
      if (block) this.onProgressBlock(block);
    });
    const stderrDone = new Promise<void>((resolve) => {
      createInterface({ input: this.child.stderr! })
        .on('line', (line) => {
          this.stderrTail.push(line);
          if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
          options.onStderrLine?.(line);
        })
        .on('close', resolve);
    });

    if (options.liveness) {
      this.watchdog = new LivenessWatch(options.liveness, (failure) => {
        if (!this.stopping && !this.hasExited) void this.stop(failure, { skipQuit: true });
      });
    }
    this.exited = new Promise<FfmpegExit>((resolve) => {
      let spawnError: Error | undefined;
      this.child.once('error', (error) => {
        spawnError = error;
        // A failed spawn never emits 'exit' on some Node versions; 'close' still comes.
      });
      this.child.once('close', async (code, signal) => {
        this.hasExited = true;
        this.watchdog?.dispose();
        liveChildren.delete(this.child);
        await stderrDone;
        resolve({
          code,
          signal,
          stopCause: this.stopCause,
          escalation: this.escalation,
          frames: this.frames,
          stderrTail: [...this.stderrTail],
          spawnError,
        });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get framesSeen(): number {
    return this.frames;
  }

  /** Our end of extra pipe `fd` (3 for the first of `extraPipes`). */
  pipe(fd: number): Duplex {
    const stream = this.child.stdio[fd];
    if (!(stream instanceof Duplex)) throw new Error(`ffmpeg has no extra pipe at fd ${fd}`);
    return stream;
  }

  /**
   * Ends ffmpeg, gently first so it flushes its decoder and finalises its outputs.
   * A stalled reader is blocked in a network read and never sees `q`, so `skipQuit`
   * goes straight to signals. ffmpeg aborts a blocked read only from its second signal,
   * and the static build's handler is one-shot per signal (a second SIGTERM would kill
   * it without a flush), so the second one is SIGINT.
   */
  stop(cause: StopCause = 'requested', options: { skipQuit?: boolean } = {}): Promise<FfmpegExit> {
    if (this.stopping) return this.stopping;
    this.stopCause ??= cause;
    this.stopping = this.options.stopMode === 'discard' ? this.killNow() : this.escalate(options.skipQuit ?? false);
    return this.stopping;
  }

  private killNow(): Promise<FfmpegExit> {
    if (!this.hasExited) {
      this.escalation = 'sigkill';
      this.child.kill('SIGKILL');
    }
    return this.exited;
  }

  private async escalate(skipQuit: boolean): Promise<FfmpegExit> {
    const quitGraceMs = this.options.quitGraceMs ?? 3_000;
    const termGraceMs = this.options.termGraceMs ?? 3_000;
    if (!skipQuit && !this.hasExited) {
      this.escalation = 'quit';
      this.child.stdin?.end('q');
      if (await this.exitsWithin(quitGraceMs)) return this.exited;
    }
    if (!this.hasExited) {
      this.escalation = 'sigterm';
      this.child.kill('SIGTERM');
      if (await this.exitsWithin(SECOND_SIGNAL_DELAY_MS)) return this.exited;
    }
    if (!this.hasExited) {
      this.escalation = 'sigint';
      this.child.kill('SIGINT');
      if (await this.exitsWithin(termGraceMs)) return this.exited;
    }
    if (!this.hasExited) {
      this.escalation = 'sigkill';
      this.child.kill('SIGKILL');
    }
    return this.exited;
  }

  private async exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const result = await Promise.race([this.exited.then(() => true as const), timeout]);
    clearTimeout(timer);
    return result;
  }

  private onProgressBlock(block: FfmpegProgress): void {
    if (block.frame > this.frames) {
      this.frames = block.frame;
      this.watchdog?.alive();
    }
    this.options.onProgress?.(block);
  }
}
