import type { Duplex } from 'node:stream';
import * as z from 'zod';
import { realClock, type Clock, type ClockTimer } from '../clock';
import { MediaError, ValidationError } from '../errors';
import { resolveFfmpegPath } from '../ffmpeg/binary';
import { FfmpegProcess } from '../ffmpeg/supervisor';
import { isSubscribed, type RoomExitReason, type RoomListener, type RoomSource, type RoomTarget, type Subscription } from './room-source';

/*
 * A scripted TRTC room for tests and local runs (`--room sim:@scenario.json`). Times are
 * seconds from entering, on the room's clock: real time unless a VirtualClock is given (benchmarks
 * and tests that run hours of room faster than real time; the frames are still real ffmpeg output,
 * and the clock waits for each one — see shared/clock.ts). The recorder keeps the room's timing,
 * so the simulator never runs ahead of the clock.
 *
 *   {"anchors":[{"userId":"alice","audio":true,"video":true,"joinAt":0,"leaveAt":null}],
 *    "end":{"at":10,"reason":"dismissed"}}
 *
 * Per anchor (defaults in brackets): audio, video [true]; joinAt [0]; leaveAt [null: stays];
 * width x height [640x360], fps [15]; sampleRate [48000], channels [1]; audioOff / videoOff
 * [[]]: windows `{from, to}` in which the anchor mutes that medium (`to` null: until leaving);
 * syncPattern [false]: instead of the test pattern and tone, black with a white flash and silence
 * with a 1 kHz beep, both for 100 ms at the same instants, every SYNC_MARK_SECONDS from each join
 * or unmute: marks to measure A/V sync by in the recording.
 * An anchor who leaves and comes back is the same userId listed again with a later window.
 * `end.reason` is `dismissed` or `kicked`; events at or after `end.at` never happen.
 *
 * What the listener sees, in order: anchorJoined, then videoAvailable/audioAvailable(true) and
 * frames; at a mute, available(false) and no frames until available(true); at leaveAt,
 * available(false) for what was on, then anchorLeft; at the end (or kick()/leave()), only
 * exited(reason), as the SDK does. Frame timestamps are ms from entering, on an exact grid
 * (1000/fps, 20 ms for audio) from each join or unmute; a frame is delivered when the room
 * clock reaches its time, not before.
 *
 * Frames are real ffmpeg output: I420 from a test pattern (testsrc2, smptebars, testsrc, then
 * the same with the hue turned), and s16le from a tone of 440 Hz + 110 Hz per anchor, in order
 * of first appearance. Audio comes in 20 ms frames, like TRTC's.
 */

const MAX_ANCHORS = 16;
const MAX_SECONDS = 86_400;
const SAMPLE_RATES = [8000, 16000, 32000, 44100, 48000] as const;
const AUDIO_FRAME_MS = 20;
/** ffmpeg needs a moment (more on a busy machine) for its first frame; started early, frames wait in the pipe at joinAt. */
const PRESTART_MS = 500;
/** TRTC's generic ERR_FAILED, for an ffmpeg that died under the simulator. */
const SIMULATOR_ERROR_CODE = -1;
const VIDEO_PATTERNS = ['testsrc2', 'smptebars', 'testsrc'] as const;
/** The sync pattern's marks: a flash and a beep this often, each lasting SYNC_MARK_LENGTH. */
export const SYNC_MARK_SECONDS = 10;
const SYNC_MARK_LENGTH = 0.1;
/** lavfi's expression for "inside a mark" at time t. */
const IN_SYNC_MARK = `lt(mod(t,${SYNC_MARK_SECONDS}),${SYNC_MARK_LENGTH})`;

const seconds = () =>
  z.number({ error: 'must be a number of seconds' }).min(0, 'must be at least 0').max(MAX_SECONDS, `must be at most ${MAX_SECONDS}`);

const evenPixels = z
  .number({ error: 'must be a number of pixels' })
  .int('must be a whole number of pixels')
  .min(16, 'must be at least 16')
  .max(4096, 'must be at most 4096')
  .refine((value) => value % 2 === 0, 'must be even (I420 halves it for chroma)');

const muteWindowSchema = z.strictObject({
  from: seconds(),
  to: seconds().nullable().default(null),
});

const anchorSchema = z.strictObject({
  userId: z.string({ error: 'must be a string' }).min(1, 'must not be empty'),
  audio: z.boolean({ error: 'must be true or false' }).default(true),
  video: z.boolean({ error: 'must be true or false' }).default(true),
  joinAt: seconds().default(0),
  leaveAt: seconds().nullable().default(null),
  width: evenPixels.default(640),
  height: evenPixels.default(360),
  fps: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(60, 'must be at most 60').default(15),
  sampleRate: z.literal(SAMPLE_RATES, { error: `must be one of ${SAMPLE_RATES.join(', ')}` }).default(48000),
  channels: z.literal([1, 2], { error: 'must be 1 or 2' }).default(1),
  audioOff: z.array(muteWindowSchema, { error: 'must be a list of {from, to} windows' }).default([]),
  videoOff: z.array(muteWindowSchema, { error: 'must be a list of {from, to} windows' }).default([]),
  syncPattern: z.boolean({ error: 'must be true or false' }).default(false),
});

export const roomScenarioSchema = z
  .strictObject({
    anchors: z.array(anchorSchema, { error: 'must be a list of anchors' }).max(MAX_ANCHORS, `must have at most ${MAX_ANCHORS} anchors`),
    end: z.strictObject({
      at: seconds().positive('must be after 0'),
      reason: z.enum(['dismissed', 'kicked'], { error: 'must be dismissed or kicked' }),
    }),
  })
  .superRefine((scenario, ctx) => {
    const issue = (path: Array<string | number>, message: string) => ctx.addIssue({ code: 'custom', path, message });
    const lastPresence = new Map<string, number>();
    scenario.anchors.forEach((anchor, index) => {
      const at = (...path: Array<string | number>) => ['anchors', index, ...path];
      if (anchor.joinAt >= scenario.end.at) issue(at('joinAt'), 'must be before end.at');
      if (anchor.leaveAt !== null && anchor.leaveAt <= anchor.joinAt) issue(at('leaveAt'), 'must be after joinAt');
      const earlier = lastPresence.get(anchor.userId);
      if (earlier !== undefined) {
        const previous = scenario.anchors[earlier]!;
        if (previous.joinAt > anchor.joinAt) issue(at('joinAt'), `must be after the earlier presence of ${anchor.userId} (anchors.${earlier}): list a user's presences in order`);
        else if (previous.leaveAt === null || previous.leaveAt >= anchor.joinAt) issue(at('joinAt'), `overlaps the earlier presence of ${anchor.userId} (anchors.${earlier}), which must leave first`);
      }
      lastPresence.set(anchor.userId, index);
      for (const kind of ['audio', 'video'] as const) {
        const field = `${kind}Off` as const;
        if (anchor[field].length > 0 && !anchor[kind]) issue(at(field), `applies only when ${kind} is true`);
        anchor[field].forEach((window, w) => {
          const previousTo = w === 0 ? anchor.joinAt : anchor[field][w - 1]!.to;
          if (previousTo === null || window.from <= previousTo) issue(at(field, w, 'from'), w === 0 ? 'must be after joinAt' : 'must be after the previous window ends');
          if (anchor.leaveAt !== null && window.from >= anchor.leaveAt) issue(at(field, w, 'from'), 'must be before leaveAt');
          if (window.to !== null && window.to <= window.from) issue(at(field, w, 'to'), 'must be after from');
          else if (window.to !== null && anchor.leaveAt !== null && window.to >= anchor.leaveAt) issue(at(field, w, 'to'), 'must be before leaveAt (null: muted until leaving)');
        });
      }
    });
  });

export type RoomScenario = z.infer<typeof roomScenarioSchema>;
type AnchorScenario = RoomScenario['anchors'][number];
type MediaKind = 'audio' | 'video';

/** Validates a parsed JSON scenario, naming every bad field. */
export function parseRoomScenario(json: unknown): RoomScenario {
  const parsed = roomScenarioSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  throw new ValidationError(
    parsed.error.issues.flatMap((issue) => {
      const path = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => ({ field: [...path, key].join('.'), message: 'unknown field' }));
      return [{ field: path.join('.') || 'scenario', message: issue.message }];
    }),
  );
}

export type RoomSimulator = RoomSource & {
  /** What a RemoveUser of the recorder does: out at once with exited('kicked'). */
  kick(): void;
  /** Per anchor: frame feeds (ffmpegs) started and frames delivered. An anchor not subscribed to has none. */
  readonly usage: ReadonlyMap<string, { feeds: number; frames: number }>;
};

export function createRoomSimulator(scenario: RoomScenario, options: { ffmpegPath?: string; clock?: Clock } = {}): RoomSimulator {
  return new ScriptedRoom(scenario, resolveFfmpegPath(options.ffmpegPath), options.clock ?? realClock);
}

interface FeedOptions {
  binary: string;
  args: string[];
  /** The pipe is cut into frames of exactly this size. */
  frameBytes: number;
  /** Room-clock spacing of frames. */
  periodMs: number;
  /** The room's clock; `now` is room time (ms from entering). */
  clock: Clock;
  now: () => number;
  deliver: (data: Buffer, timestampMs: number) => void;
  /** ffmpeg ended without being stopped. */
  onFailure: (message: string) => void;
}

/**
 * One ffmpeg writing raw frames to a pipe, taken off it on the room clock. Reading on schedule
 * is what paces ffmpeg: blocked on a full pipe, it runs ahead by at most what the pipe buffers.
 */
class RawFrameFeed {
  readonly closed: Promise<void>;
  private readonly ffmpeg: FfmpegProcess;
  /** fd 3, as stdout carries the supervisor's -progress. */
  private readonly media: Duplex;
  private schedule: { startMs: number; untilMs: number; delivered: number } | undefined;
  private timer: ClockTimer | undefined;
  private stopped = false;
  /** While a frame is due and ffmpeg has not written it yet: resolved when it has, or we pause. */
  private awaitingFrame: { promise: Promise<void>; resolve: () => void } | undefined;
  private readonly removeIdleCheck: () => void;

  constructor(private readonly options: FeedOptions) {
    // Paced by us, a blocked ffmpeg is waiting, not stalled: no watchdog.
    this.ffmpeg = new FfmpegProcess({
      binary: options.binary,
      args: options.args,
      extraPipes: 1,
    });
    this.media = this.ffmpeg.pipe(3);
    // A virtual clock does not move on while a due frame is still being made.
    this.removeIdleCheck = options.clock.addIdleCheck(() => this.awaitingFrame?.promise);
    this.closed = this.ffmpeg.exited.then((exit) => {
      this.pause();
      this.removeIdleCheck();
      if (this.stopped) return;
      options.onFailure(
        exit.spawnError
          ? `ffmpeg could not start: ${exit.spawnError.message}`
          : `ffmpeg exited (${exit.signal ?? `code ${exit.code}`}): ${exit.stderrTail.join(' | ')}`,
      );
    });
  }

  /**
   * Delivers the frames stamped from `startMs` up to (not including) `untilMs`. The end is part of
   * the schedule, not left to the timer that mutes us, so which timer fires first cannot matter.
   */
  play(startMs: number, untilMs: number): void {
    this.schedule = { startMs, untilMs, delivered: 0 };
    this.pump();
  }

  /** No more frames until the next play(); ffmpeg waits on the full pipe meanwhile. */
  pause(): void {
    this.schedule = undefined;
    this.options.clock.clearTimer(this.timer);
    this.media.off('readable', this.pump);
    this.frameArrived();
  }

  /** Nothing to flush: closing our end fails ffmpeg's next write, and the supervisor's signals follow. */
  stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.pause();
      this.media.destroy();
      void this.ffmpeg.stop('requested', { skipQuit: true });
    }
    return this.closed;
  }

  private frameArrived(): void {
    this.awaitingFrame?.resolve();
    this.awaitingFrame = undefined;
  }

  private readonly pump = (): void => {
    this.options.clock.clearTimer(this.timer);
    this.media.off('readable', this.pump);
    this.frameArrived();
    const schedule = this.schedule;
    // Re-checked each time round: a listener may pause or stop us from inside deliver().
    while (schedule && this.schedule === schedule) {
      const dueMs = schedule.startMs + schedule.delivered * this.options.periodMs;
      if (dueMs >= schedule.untilMs) {
        this.pause();
        return;
      }
      const waitMs = dueMs - this.options.now();
      if (waitMs > 0) {
        // Rounded up: Node truncates a fractional delay, which would wake us early.
        this.timer = this.options.clock.setTimeout(this.pump, Math.ceil(waitMs));
        return;
      }
      const frame = this.media.read(this.options.frameBytes) as Buffer | null;
      if (frame === null) {
        // ffmpeg is behind (still starting): catch up, on the same timestamps, once it writes.
        this.media.once('readable', this.pump);
        let resolve!: () => void;
        const promise = new Promise<void>((done) => (resolve = done));
        this.awaitingFrame = { promise, resolve };
        return;
      }
      // A short read means the pipe ended: ffmpeg died, and `closed` reports it.
      if (frame.length < this.options.frameBytes) return;
      schedule.delivered++;
      this.options.deliver(frame, Math.round(dueMs));
    }
  };
}

const FFMPEG_QUIET = ['-hide_banner', '-nostdin', '-loglevel', 'error'];

/** An anchor's frames: ffmpeg's arguments up to the output, which is `pipe:3` here and stdout in the room process. */
function feedArgs(anchor: AnchorScenario, kind: MediaKind, look: number): string[] {
  if (kind === 'audio') {
    // 1 ms frames, so the beep's volume switches on within a millisecond of its mark.
    const source = anchor.syncPattern
      ? `sine=frequency=1000:sample_rate=${anchor.sampleRate}:samples_per_frame=${Math.round(anchor.sampleRate / 1000)},volume=volume='if(${IN_SYNC_MARK},1,0)':eval=frame`
      : `sine=frequency=${440 + 110 * look}:sample_rate=${anchor.sampleRate}`;
    return [...FFMPEG_QUIET, '-f', 'lavfi', '-i', source, '-ac', String(anchor.channels), '-f', 's16le'];
  }
  if (anchor.syncPattern) {
    const source = `color=c=black:size=${anchor.width}x${anchor.height}:rate=${anchor.fps},drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='${IN_SYNC_MARK}'`;
    return [...FFMPEG_QUIET, '-f', 'lavfi', '-i', source, '-pix_fmt', 'yuv420p', '-f', 'rawvideo'];
  }
  const pattern = VIDEO_PATTERNS[look % VIDEO_PATTERNS.length];
  const hue = (Math.floor(look / VIDEO_PATTERNS.length) * 90) % 360;
  const source = `${pattern}=size=${anchor.width}x${anchor.height}:rate=${anchor.fps},hue=h=${hue}`;
  return [...FFMPEG_QUIET, '-f', 'lavfi', '-i', source, '-pix_fmt', 'yuv420p', '-f', 'rawvideo'];
}

/** Bytes and room-clock spacing of an anchor's frames. */
function frameShape(anchor: AnchorScenario, kind: MediaKind): { frameBytes: number; periodMs: number } {
  return kind === 'video'
    ? { frameBytes: (anchor.width * anchor.height * 3) / 2, periodMs: 1000 / anchor.fps }
    : { frameBytes: ((anchor.sampleRate * AUDIO_FRAME_MS) / 1000) * anchor.channels * 2, periodMs: AUDIO_FRAME_MS };
}

const toMs = (secondsFromEntering: number) => Math.round(secondsFromEntering * 1000);

/** When a medium is on: from joining to its first mute, between mutes, from the last unmute to leaving. */
function onStretches(joinMs: number, mutes: AnchorScenario['videoOff'], goneMs: number): Array<{ fromMs: number; untilMs: number }> {
  const stretches: Array<{ fromMs: number; untilMs: number }> = [];
  let fromMs: number | null = joinMs;
  for (const mute of mutes) {
    if (fromMs !== null) stretches.push({ fromMs, untilMs: toMs(mute.from) });
    fromMs = mute.to === null ? null : toMs(mute.to);
  }
  if (fromMs !== null && fromMs < goneMs) stretches.push({ fromMs, untilMs: goneMs });
  return stretches;
}

/** One anchor's medium in a SimulationPlan: its ffmpeg (output on stdout), frames and when it is on. */
export interface SimulatedFeed {
  args: string[];
  frameBytes: number;
  periodMs: number;
  stretches: Array<{ fromMs: number; untilMs: number }>;
}

/**
 * The scenario as data for the room process's simulated room (`--room sidecar-sim:`), which plays
 * it through the same delegate callbacks as the SDK: the same presences, mutes, frames (the same
 * ffmpeg sources) and end as createRoomSimulator's.
 */
export interface SimulationPlan {
  ffmpeg: string;
  prestartMs: number;
  presences: Array<{
    userId: string;
    joinMs: number;
    /** When this presence ends: its leaving or the room's end. */
    goneMs: number;
    leaves: boolean;
    leaveMs: number | null;
    video: (SimulatedFeed & { width: number; height: number }) | null;
    audio: (SimulatedFeed & { sampleRate: number; channels: number }) | null;
  }>;
  end: { atMs: number; reason: 'dismissed' | 'kicked' };
}

export function simulationPlan(scenario: RoomScenario, options: { ffmpegPath?: string } = {}): SimulationPlan {
  const looks = [...new Set(scenario.anchors.map((anchor) => anchor.userId))];
  const endMs = toMs(scenario.end.at);
  const presences = scenario.anchors.map((anchor) => {
    const look = looks.indexOf(anchor.userId);
    const joinMs = toMs(anchor.joinAt);
    const goneMs = Math.min(anchor.leaveAt === null ? Infinity : toMs(anchor.leaveAt), endMs);
    const feed = (kind: MediaKind): SimulatedFeed => ({
      args: [...feedArgs(anchor, kind, look), 'pipe:1'],
      ...frameShape(anchor, kind),
      stretches: onStretches(joinMs, anchor[`${kind}Off`], goneMs),
    });
    return {
      userId: anchor.userId,
      joinMs,
      goneMs,
      leaves: anchor.leaveAt !== null,
      leaveMs: anchor.leaveAt === null ? null : toMs(anchor.leaveAt),
      video: anchor.video ? { ...feed('video'), width: anchor.width, height: anchor.height } : null,
      audio: anchor.audio ? { ...feed('audio'), sampleRate: anchor.sampleRate, channels: anchor.channels } : null,
    };
  });
  return { ffmpeg: resolveFfmpegPath(options.ffmpegPath), prestartMs: PRESTART_MS, presences, end: { atMs: endMs, reason: scenario.end.reason } };
}

interface TimelineEvent {
  atMs: number;
  run: () => void;
}

class ScriptedRoom implements RoomSimulator {
  private state: 'ready' | 'in-room' | 'out' = 'ready';
  private listener!: RoomListener;
  private enteredAt = 0;
  private timeline: TimelineEvent[] = [];
  private nextEvent = 0;
  private timer: ClockTimer | undefined;
  /** Feeds not yet closed, including stopped ones still exiting. */
  private readonly feeds = new Set<RawFrameFeed>();
  private teardown: Promise<unknown> = Promise.resolve();
  private subscription: Subscription | undefined;
  readonly usage = new Map<string, { feeds: number; frames: number }>();

  constructor(
    private readonly scenario: RoomScenario,
    private readonly ffmpegPath: string,
    private readonly clock: Clock,
  ) {}

  async enter(_target: RoomTarget, listener: RoomListener, subscription?: Subscription): Promise<void> {
    if (this.state !== 'ready') throw new MediaError('RoomEnterFailed', 'a room simulator plays its scenario once; create another one');
    this.state = 'in-room';
    this.listener = listener;
    this.subscription = subscription;
    this.enteredAt = this.clock.now();
    const looks = [...new Set(this.scenario.anchors.map((anchor) => anchor.userId))];
    const events = this.scenario.anchors.flatMap((anchor) => this.plan(anchor, looks.indexOf(anchor.userId)));
    events.push({ atMs: toMs(this.scenario.end.at), run: () => this.exit(this.scenario.end.reason) });
    // Stable: events at the same time run in the order planned, the room's end last.
    this.timeline = events.sort((a, b) => a.atMs - b.atMs);
    // On a timer, so the first events come after enter() has resolved, as the SDK's do.
    this.timer = this.clock.setTimeout(this.advance, 0);
  }

  async leave(): Promise<void> {
    this.exit('left');
    await this.teardown;
  }

  kick(): void {
    this.exit('kicked');
  }

  private readonly now = (): number => this.clock.now() - this.enteredAt;

  private readonly advance = (): void => {
    while (this.state === 'in-room' && this.nextEvent < this.timeline.length && this.timeline[this.nextEvent]!.atMs <= this.now()) {
      this.timeline[this.nextEvent++]!.run();
    }
    const next = this.timeline[this.nextEvent];
    if (this.state === 'in-room' && next) this.timer = this.clock.setTimeout(this.advance, Math.ceil(next.atMs - this.now()));
  };

  private exit(reason: RoomExitReason): void {
    if (this.state !== 'in-room') return;
    this.state = 'out';
    this.clock.clearTimer(this.timer);
    // stop() pauses synchronously, so no frame follows exited().
    this.teardown = Promise.all([...this.feeds].map((feed) => feed.stop()));
    this.listener.exited(reason);
  }

  /** One presence of one anchor: start its ffmpegs early, then join, mute, unmute, leave. */
  private plan(anchor: AnchorScenario, look: number): TimelineEvent[] {
    const { userId } = anchor;
    // As the SDK: presence and availability for everyone, streams only for those subscribed to.
    const subscribed = isSubscribed(this.subscription, userId);
    const joinMs = toMs(anchor.joinAt);
    const goneMs = Math.min(anchor.leaveAt === null ? Infinity : toMs(anchor.leaveAt), toMs(this.scenario.end.at));
    const feeds = new Map<MediaKind, RawFrameFeed>();
    const announced = new Set<MediaKind>();
    const announce = (kind: MediaKind, available: boolean) => {
      if (available) announced.add(kind);
      else announced.delete(kind);
      if (kind === 'audio') this.listener.audioAvailable(userId, available);
      else this.listener.videoAvailable(userId, available);
    };
    const switchOff = (kind: MediaKind) => {
      feeds.get(kind)?.pause();
      if (announced.has(kind)) announce(kind, false);
    };

    const events: TimelineEvent[] = [
      {
        atMs: Math.max(0, joinMs - PRESTART_MS),
        run: () => {
          if (!subscribed) return;
          if (anchor.video) feeds.set('video', this.startFeed(anchor, 'video', look));
          if (anchor.audio) feeds.set('audio', this.startFeed(anchor, 'audio', look));
        },
      },
      { atMs: joinMs, run: () => this.listener.anchorJoined(userId) },
    ];
    for (const kind of ['video', 'audio'] as const) {
      if (!anchor[kind]) continue;
      for (const { fromMs, untilMs } of onStretches(joinMs, anchor[`${kind}Off`], goneMs)) {
        events.push({
          atMs: fromMs,
          run: () => {
            announce(kind, true);
            feeds.get(kind)?.play(fromMs, untilMs);
          },
        });
        if (untilMs < goneMs) events.push({ atMs: untilMs, run: () => switchOff(kind) });
      }
    }
    if (anchor.leaveAt !== null) {
      events.push({
        atMs: toMs(anchor.leaveAt),
        run: () => {
          for (const kind of feeds.keys()) switchOff(kind);
          for (const feed of feeds.values()) void feed.stop();
          this.listener.anchorLeft(userId);
        },
      });
    }
    return events;
  }

  private startFeed(anchor: AnchorScenario, kind: MediaKind, look: number): RawFrameFeed {
    const { userId, width, height, sampleRate, channels } = anchor;
    const usage = this.usage.get(userId) ?? { feeds: 0, frames: 0 };
    this.usage.set(userId, usage);
    usage.feeds++;
    const args = [...feedArgs(anchor, kind, look), '-progress', 'pipe:1', 'pipe:3'];
    const media =
      kind === 'video'
        ? {
            args,
            ...frameShape(anchor, kind),
            deliver: (data: Buffer, timestampMs: number) => {
              usage.frames++;
              this.listener.videoFrame({ userId, data, width, height, timestampMs });
            },
          }
        : {
            args,
            ...frameShape(anchor, kind),
            deliver: (data: Buffer, timestampMs: number) => {
              usage.frames++;
              this.listener.audioFrame({ userId, data, sampleRate, channels, timestampMs });
            },
          };
    const feed = new RawFrameFeed({
      binary: this.ffmpegPath,
      ...media,
      clock: this.clock,
      now: this.now,
      onFailure: (message) => {
        if (this.state === 'in-room') this.listener.error(SIMULATOR_ERROR_CODE, `room simulator, ${userId}'s ${kind}: ${message}`);
      },
    });
    this.feeds.add(feed);
    void feed.closed.then(() => this.feeds.delete(feed));
    return feed;
  }
}
