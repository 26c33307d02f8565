import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, read } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { MediaError } from '../../errors';
import type { Logger } from '../../log';
import type { RawAudioFormat } from '../../outputs/recording/encoder-args';
import { redact } from '../../redact';
import type { SimulationPlan } from '../room-simulator';
import type { RoomExitReason, RoomListener, RoomSource, RoomTarget, Subscription } from '../room-source';
import { parseRoomEvent, RoomMediaReader, type RoomEvent, type RoomMediaFrame } from './protocol';

export interface LiteavRoomOptions {
  /** A Python 3 that can import liteav (`npm ci` makes .venv/bin/python; the image sets TRTC_LITEAV_PYTHON). */
  python: string;
  /** The room process's program; room_process.py beside this module (or the bundle) by default. */
  script?: string;
  /** The invocation's work dir: the SDK's logs and caches go under it, never stdout or $HOME. */
  workDir: string;
  /** Added to the room process's environment (the work dir tag the next invocation's reaper looks for). */
  env?: Record<string, string>;
  /** What the SDK is asked to hand over: the rate and channels the encoder wants. */
  audio: RawAudioFormat;
  logger?: Logger;
  /** No answer from the SDK within this: RoomEnterFailed. */
  enterTimeoutMs?: number;
  /** `--room sidecar-sim:`: the room process plays this scripted room instead of joining TRTC. */
  simulation?: SimulationPlan;
  /** Pictures through the room process's shared memory (default), or all through the pipe. */
  videoRing?: boolean;
}

/** A room source whose room process can be told it was removed, as RemoveUser would (simulated rooms only). */
export type LiteavRoom = RoomSource & { kick(): void };

export const DEFAULT_ENTER_TIMEOUT_MS = 30_000;
/** How long leave() waits for the SDK's OnExitRoom before ending the process anyway. */
const EXIT_CONFIRM_TIMEOUT_MS = 5_000;
/** The room process exits within ~2.5 s of its stdin closing; then SIGTERM, then SIGKILL. */
const PROCESS_EXIT_GRACE_MS = 4_000;
const STDERR_TAIL_LINES = 20;
/** The room process's pipes for frames (room_process.py AUDIO_FD, VIDEO_FD). */
const AUDIO_FD = 4;
const VIDEO_FD = 5;
/** What RoomListener.error gets for trouble of the room process itself (TRTC's generic ERR_FAILED). */
const ROOM_PROCESS_ERROR_CODE = -1;

export function createLiteavRoom(options: LiteavRoomOptions): LiteavRoom {
  return new RoomProcess(options);
}

/** Every room process this process started that has not exited: killed if we exit first. */
const liveRoomProcesses = new Set<ChildProcess>();
let exitHookInstalled = false;

function killWithUs(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const live of liveRoomProcesses) live.kill('SIGKILL');
    });
  }
  liveRoomProcesses.add(child);
  child.once('close', () => liveRoomProcesses.delete(child));
}

/**
 * The production room on Linux: Tencent's liteav SDK in its own Python process (room_process.py),
 * spawned without a shell and supervised like ffmpeg. Control and events go over JSON lines, audio
 * and video over a binary pipe each; the process leaves the room and exits when its stdin closes, and by
 * PR_SET_PDEATHSIG when this process dies, so a killed function never leaves a recorder in a room.
 */
class RoomProcess implements LiteavRoom {
  private child: ChildProcess | undefined;
  private listener!: RoomListener;
  private state: 'ready' | 'entering' | 'in' | 'out' = 'ready';
  private entering: { resolve(): void; reject(error: Error): void; timer: NodeJS.Timeout } | undefined;
  private exitConfirmed: (() => void) | undefined;
  private processClosed: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: 0, signal: null });
  private readonly stderrTail: string[] = [];
  private readonly log: Logger | undefined;
  /** The room process's video ring, opened read-only, once it offered one. */
  private ringFd: number | undefined;
  /** Pictures in arrival order, read from the ring one at a time so they are delivered in order. */
  private readonly pictures: RoomMediaFrame[] = [];
  private readingPicture = false;

  constructor(private readonly options: LiteavRoomOptions) {
    this.log = options.logger?.child({ room: options.simulation ? 'liteav-simulated' : 'liteav' });
  }

  enter(target: RoomTarget, listener: RoomListener, subscription?: Subscription): Promise<void> {
    if (this.state !== 'ready') return Promise.reject(new MediaError('RoomEnterFailed', 'a room process enters one room once; create another one'));
    this.state = 'entering';
    this.listener = listener;
    const child = spawn(this.options.python, ['-B', this.options.script ?? join(__dirname, 'room_process.py')], {
      // stdin: control (EOF: leave and exit); stdout: unused (the SDK's console is read inside);
      // stderr: diagnostics; 3: events; 4: audio; 5: video (apart, so audio never waits behind a picture).
      stdio: ['pipe', 'ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
      shell: false,
      env: { ...process.env, ...this.options.env, HOME: join(this.options.workDir, 'liteav-home'), PYTHONDONTWRITEBYTECODE: '1' },
    });
    this.child = child;
    killWithUs(child);
    this.processClosed = new Promise((resolve) => {
      let spawnError: Error | undefined;
      child.once('error', (error) => (spawnError = error));
      child.once('close', (code, signal) => {
        this.onProcessClosed(code, signal, spawnError);
        resolve({ code, signal });
      });
    });
    // Pipes to a process that died must not crash us; its exit is reported through 'close'.
    for (const stream of child.stdio) stream?.on('error', () => {});
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    });
    createInterface({ input: child.stdio[3] as Readable }).on('line', (line) => this.onEventLine(line));
    for (const fd of [AUDIO_FD, VIDEO_FD]) {
      const media = new RoomMediaReader();
      (child.stdio[fd] as Readable).on('data', (chunk: Buffer) => {
        let frames: RoomMediaFrame[];
        try {
          frames = media.push(chunk);
        } catch (error) {
          this.fail(`the room process's media stream is broken: ${error instanceof Error ? error.message : String(error)}`);
          return;
        }
        for (const frame of frames) (frame.kind === 'video' ? this.queuePicture(frame) : this.onFrame(frame));
      });
    }

    const enterTimeoutMs = this.options.enterTimeoutMs ?? DEFAULT_ENTER_TIMEOUT_MS;
    const entered = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.enterFailed(new MediaError('RoomEnterFailed', `entering the TRTC room failed: the SDK gave no answer in ${enterTimeoutMs / 1000} s`)), enterTimeoutMs);
      this.entering = { resolve, reject, timer };
    });
    const room = target.roomId !== undefined ? { roomId: target.roomId, strRoomId: null } : { roomId: null, strRoomId: target.strRoomId ?? '' };
    this.send({
      op: 'enter',
      room: { sdkAppId: target.sdkAppId, userId: target.userId, userSig: target.userSig, ...room },
      audio: this.options.audio,
      subscription: subscription ?? null,
      logDir: join(this.options.workDir, 'liteav-log'),
      simulation: this.options.simulation ?? null,
    });
    return entered;
  }

  async leave(): Promise<void> {
    if (this.state === 'ready') return;
    if (this.state !== 'out') {
      const confirmed = new Promise<void>((resolve) => (this.exitConfirmed = resolve));
      this.send({ op: 'leave' });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([confirmed, this.processClosed, new Promise((resolve) => (timer = setTimeout(resolve, EXIT_CONFIRM_TIMEOUT_MS)))]);
      clearTimeout(timer);
      this.exit('left');
    }
    await this.endProcess();
  }

  kick(): void {
    this.send({ op: 'kick' });
  }

  private send(command: Record<string, unknown>): void {
    const stdin = this.child?.stdin;
    if (stdin && !stdin.writableEnded && !stdin.destroyed) stdin.write(`${JSON.stringify(command)}\n`);
  }

  private onEventLine(line: string): void {
    const event = parseRoomEvent(line);
    if (!event) {
      this.log?.warn('room process: unknown event line', { line: line.slice(0, 200) });
      return;
    }
    this.onEvent(event);
  }

  private onEvent(event: RoomEvent): void {
    const listener = this.listener;
    switch (event.event) {
      case 'ready':
        this.log?.info('room process ready', { sdk: event.sdk, version: event.version, pid: event.pid, videoRing: event.videoRing !== null });
        return this.openRing(event.videoRing);
      case 'unavailable':
        return this.enterFailed(new MediaError('TrtcSdkUnavailable', `${event.message}; \`npm ci\` installs liteav into .venv/, or set TRTC_LITEAV_PYTHON to a Python that has it`));
      case 'entered':
        if (this.state !== 'entering') return;
        this.state = 'in';
        clearTimeout(this.entering?.timer);
        this.log?.info('in the TRTC room', { afterMs: event.afterMs });
        this.entering?.resolve();
        this.entering = undefined;
        return;
      case 'enter-failed':
        return this.enterFailed(new MediaError('RoomEnterFailed', describeEnterFailure(event)));
      case 'exited':
        return this.exit(event.reason);
      case 'error':
        return listener.error(event.code, event.message);
      case 'connection':
        // The SDK reconnects by itself: a gap in the recording (black and silence), not its end.
        return this.log?.info('TRTC connection', { state: event.state });
      case 'clock':
        return this.log?.info('first frame', { anchor: event.userId, kind: event.kind, ptsMs: event.ptsMs, arrivalMs: event.arrivalMs });
      case 'audio-dropped':
        return this.log?.warn('room process dropped audio: Node did not read it for 10 s', { anchor: event.userId, ms: event.ms });
    }
    if (this.state !== 'in') return;
    switch (event.event) {
      case 'anchor-joined':
        return listener.anchorJoined(event.userId);
      case 'anchor-left':
        return listener.anchorLeft(event.userId);
      case 'audio-available':
        return listener.audioAvailable(event.userId, event.available);
      case 'video-available':
        return listener.videoAvailable(event.userId, event.available);
    }
  }

  private onFrame(frame: RoomMediaFrame): void {
    if (this.state !== 'in') return;
    if (frame.kind === 'audio') {
      this.listener.audioFrame({ userId: frame.userId, data: frame.data, sampleRate: frame.sampleRate, channels: frame.channels, timestampMs: frame.arrivalMs });
    } else {
      this.listener.videoFrame({
        userId: frame.userId,
        data: frame.data,
        width: frame.width,
        height: frame.height,
        timestampMs: frame.arrivalMs,
        ...(frame.droppedBefore > 0 ? { droppedBefore: frame.droppedBefore } : {}),
      });
    }
  }

  /** Pictures come through the room process's shared memory once we can read it: it tells them apart by `video-ring`. */
  private openRing(path: string | null): void {
    if (path === null || this.options.videoRing === false) return;
    try {
      this.ringFd = openSync(path, 'r');
    } catch (error) {
      this.log?.warn('cannot open the room process\'s video ring; pictures come through the pipe', { error });
      return;
    }
    this.send({ op: 'video-ring' });
  }

  private queuePicture(frame: RoomMediaFrame): void {
    this.pictures.push(frame);
    if (!this.readingPicture) this.nextPicture();
  }

  /** One picture at a time: read from the ring (one pread) when it is there, then handed over and its space freed. */
  private nextPicture(): void {
    const frame = this.pictures.shift();
    if (!frame) {
      this.readingPicture = false;
      return;
    }
    this.readingPicture = true;
    const inRing = frame.inRing;
    if (!inRing) {
      this.onFrame(frame);
      return this.nextPicture();
    }
    if (this.ringFd === undefined) return this.nextPicture(); // closed: we are out of the room
    const data = Buffer.allocUnsafe(inRing.bytes);
    read(this.ringFd, data, 0, inRing.bytes, inRing.offset, (error, bytesRead) => {
      this.send({ op: 'read', frames: 1 });
      if (error || bytesRead !== inRing.bytes) {
        this.fail(`reading a picture from the room process's video ring failed: ${error?.message ?? `${bytesRead} of ${inRing.bytes} bytes`}`);
      } else {
        this.onFrame({ ...frame, data, inRing: null });
      }
      this.nextPicture();
    });
  }

  private enterFailed(error: MediaError): void {
    if (this.state !== 'entering') return;
    this.state = 'out';
    clearTimeout(this.entering?.timer);
    this.log?.warn('could not enter the TRTC room', { code: error.code, message: error.message });
    this.entering?.reject(error);
    this.entering = undefined;
    void this.endProcess();
  }

  /** Out of the room (once): no frame or event follows. */
  private exit(reason: RoomExitReason): void {
    if (this.state === 'entering') return this.enterFailed(new MediaError('RoomEnterFailed', `out of the TRTC room (${reason}) before entering completed`));
    if (this.state !== 'in') return;
    this.state = 'out';
    this.exitConfirmed?.();
    this.listener.exited(reason);
    void this.endProcess();
  }

  private fail(message: string): void {
    this.log?.error('room process failed', { message, stderr: this.stderrTail });
    if (this.state === 'in') this.listener.error(ROOM_PROCESS_ERROR_CODE, message);
    if (this.state === 'entering') this.enterFailed(new MediaError('RoomEnterFailed', message));
    else this.exit('error');
  }

  private onProcessClosed(code: number | null, signal: NodeJS.Signals | null, spawnError: Error | undefined): void {
    if (this.state === 'out') return;
    const stderr = redact(this.stderrTail.slice(-5).join(' | '));
    if (spawnError) {
      const missing = (spawnError as NodeJS.ErrnoException).code === 'ENOENT';
      this.enterFailed(
        new MediaError(
          'TrtcSdkUnavailable',
          missing
            ? `no Python at ${this.options.python} for the TRTC room: \`npm ci\` creates .venv/ with liteav, or set TRTC_LITEAV_PYTHON`
            : `the TRTC room process could not start: ${spawnError.message}`,
          { cause: spawnError },
        ),
      );
      return;
    }
    this.fail(`the TRTC room process exited (${signal ?? `code ${code}`})${stderr ? `: ${stderr}` : ''}`);
  }

  /** Ends the room process: stdin closed (it leaves and exits), then SIGTERM, then SIGKILL. */
  private async endProcess(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      (child.stdin as Writable | null)?.end();
      const escalate = async (signal: NodeJS.Signals, waitMs: number) => {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([this.processClosed.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), waitMs)))]);
        clearTimeout(timer);
        if (timedOut) child.kill(signal);
      };
      await escalate('SIGTERM', PROCESS_EXIT_GRACE_MS);
      await escalate('SIGKILL', 1_000);
    }
    await this.processClosed;
    if (this.ringFd !== undefined) {
      closeSync(this.ringFd);
      this.ringFd = undefined;
    }
  }
}

function describeEnterFailure(event: Extract<RoomEvent, { event: 'enter-failed' }>): string {
  const seconds = (event.afterMs / 1000).toFixed(1);
  const code = event.code === null ? '' : ` ${event.name ?? 'error'} (${event.code})`;
  const sdkSaid = event.sdkCode !== undefined ? `; its log says ${event.sdkCode} ${event.sdkMessage ?? ''}`.trimEnd() : '';
  const detail = event.message ? `: ${event.message}` : '';
  return `entering the TRTC room failed: the SDK reported${code || ' a failure'} after ${seconds} s${detail}${sdkSaid}`;
}
