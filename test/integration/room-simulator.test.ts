import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors';
import { createRoomSimulator, parseRoomScenario, type RoomSimulator } from '../../shared/sources/room-simulator';
import type { AudioFrame, RoomExitReason, RoomListener, VideoFrame } from '../../shared/sources/room-source';
import { ffmpegPath } from '../support/media-tools';
import { runningProcessesMatching } from '../support/process';

const target = { sdkAppId: 1400000001, userId: 'recorder', userSig: 'sig', roomId: 1234 };
const LISTENER_METHODS = ['anchorJoined', 'anchorLeft', 'audioAvailable', 'videoAvailable', 'audioFrame', 'videoFrame', 'exited', 'error'] as const;

interface Observed {
  name: (typeof LISTENER_METHODS)[number];
  /** Arrival, in ms from just before enter(). */
  atMs: number;
  args: unknown[];
}

/** The simulator's ffmpegs run through a uniquely named link, so we can tell them from any other ffmpeg. */
let workDir: string;
let simulatorFfmpeg: string;

beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'room-simulator-test-'));
  simulatorFfmpeg = path.join(workDir, 'ffmpeg');
  fs.symlinkSync(ffmpegPath, simulatorFfmpeg);
});

afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

async function enterObserved(room: RoomSimulator) {
  const events: Observed[] = [];
  let resolveExited!: (reason: RoomExitReason) => void;
  const exited = new Promise<RoomExitReason>((resolve) => (resolveExited = resolve));
  const start = performance.now();
  const listener = Object.fromEntries(
    LISTENER_METHODS.map((name) => [
      name,
      (...args: unknown[]) => {
        events.push({ name, atMs: performance.now() - start, args });
        if (name === 'exited') resolveExited(args[0] as RoomExitReason);
      },
    ]),
  ) as unknown as RoomListener;
  await room.enter(target, listener);
  return { events, exited };
}

type Arrived<T> = T & { arrivedMs: number };

function framesOf(events: Observed[], name: 'videoFrame', userId: string): Array<Arrived<VideoFrame>>;
function framesOf(events: Observed[], name: 'audioFrame', userId: string): Array<Arrived<AudioFrame>>;
function framesOf(events: Observed[], name: 'audioFrame' | 'videoFrame', userId: string) {
  return events
    .filter((event) => event.name === name && (event.args[0] as { userId: string }).userId === userId)
    .map((event) => ({ ...(event.args[0] as AudioFrame | VideoFrame), arrivedMs: event.atMs }));
}

function arrivalOf(events: Observed[], name: Observed['name'], ...args: unknown[]): number {
  const found = events.find((event) => event.name === name && JSON.stringify(event.args) === JSON.stringify(args));
  if (!found) throw new Error(`no ${name}(${args.join(', ')})`);
  return found.atMs;
}

/** Frames are stamped on a fixed grid from `startMs`; each arrives no earlier than its stamp, and soon after. */
function expectPaced(frames: Array<{ timestampMs: number; arrivedMs: number }>, startMs: number, periodMs: number, count: number) {
  expect(frames.map((frame) => frame.timestampMs)).toEqual(Array.from({ length: count }, (_, i) => Math.round(startMs + i * periodMs)));
  const lags = frames.map((frame) => frame.arrivedMs - frame.timestampMs).sort((a, b) => a - b);
  expect(lags[0]!).toBeGreaterThanOrEqual(-2);
  expect(lags[Math.floor(lags.length / 2)]!).toBeLessThan(30);
  // ffmpeg's start-up can make the first frames late (they then come at once, stamps intact).
  const settled = frames.filter((frame) => frame.timestampMs >= startMs + 500);
  for (const frame of settled) expect(frame.arrivedMs - frame.timestampMs).toBeLessThan(300);
}

describe('room simulator', () => {
  it('plays a two-anchor scenario in real time with real frames, then is dismissed', async () => {
    const scenario = parseRoomScenario({
      anchors: [
        { userId: 'alice', width: 320, height: 240, fps: 15 },
        {
          userId: 'bob',
          joinAt: 0.8,
          leaveAt: 2.4,
          width: 176,
          height: 144,
          fps: 10,
          sampleRate: 16000,
          channels: 2,
          videoOff: [{ from: 1.4, to: 1.8 }],
        },
      ],
      end: { at: 3, reason: 'dismissed' },
    });
    const room = createRoomSimulator(scenario, { ffmpegPath: simulatorFfmpeg });
    const { events, exited } = await enterObserved(room);
    const ffmpegsAt = (ms: number) =>
      new Promise<number>((resolve) => setTimeout(() => resolve(runningProcessesMatching(simulatorFfmpeg).length), ms));
    const [bothIn, bobGone] = await Promise.all([ffmpegsAt(1_000), ffmpegsAt(2_700)]);

    expect(await exited).toBe('dismissed');
    await room.leave();
    expect(runningProcessesMatching(simulatorFfmpeg)).toEqual([]);
    expect([bothIn, bobGone]).toEqual([4, 2]);

    // Presence events at their scripted times (±300 ms), in the SDK's order.
    const presence = events.filter((event) => !event.name.endsWith('Frame'));
    expect(presence.map((event) => [event.name, ...event.args])).toEqual([
      ['anchorJoined', 'alice'],
      ['videoAvailable', 'alice', true],
      ['audioAvailable', 'alice', true],
      ['anchorJoined', 'bob'],
      ['videoAvailable', 'bob', true],
      ['audioAvailable', 'bob', true],
      ['videoAvailable', 'bob', false],
      ['videoAvailable', 'bob', true],
      ['videoAvailable', 'bob', false],
      ['audioAvailable', 'bob', false],
      ['anchorLeft', 'bob'],
      ['exited', 'dismissed'],
    ]);
    const expectAround = (atMs: number, scriptedMs: number) => expect(Math.abs(atMs - scriptedMs)).toBeLessThan(300);
    expectAround(arrivalOf(events, 'anchorJoined', 'alice'), 0);
    expectAround(arrivalOf(events, 'anchorJoined', 'bob'), 800);
    expectAround(arrivalOf(events, 'videoAvailable', 'bob', false), 1_400);
    expectAround(arrivalOf(events, 'anchorLeft', 'bob'), 2_400);
    expectAround(arrivalOf(events, 'exited', 'dismissed'), 3_000);
    expect(events.at(-1)!.name).toBe('exited');

    // alice: 320x240 I420 at 15 fps, 48 kHz mono in 20 ms frames, from 0 to the end at 3 s.
    const aliceVideo = framesOf(events, 'videoFrame', 'alice');
    expect(new Set(aliceVideo.map((frame) => `${frame.width}x${frame.height}:${frame.data.length}`))).toEqual(new Set(['320x240:115200']));
    expectPaced(aliceVideo, 0, 1000 / 15, 45);
    const aliceAudio = framesOf(events, 'audioFrame', 'alice');
    expect(new Set(aliceAudio.map((frame) => `${frame.sampleRate}/${frame.channels}:${frame.data.length}`))).toEqual(new Set(['48000/1:1920']));
    expectPaced(aliceAudio, 0, 20, 150);
    // The rate, by arrival: one second's worth of frames in each second.
    const arrivedWithin = (frames: Array<{ arrivedMs: number }>, fromMs: number, toMs: number) =>
      frames.filter((frame) => frame.arrivedMs >= fromMs && frame.arrivedMs < toMs).length;
    expect(Math.abs(arrivedWithin(aliceVideo, 1_000, 2_000) - 15)).toBeLessThanOrEqual(2);
    expect(Math.abs(arrivedWithin(aliceAudio, 1_000, 2_000) - 50)).toBeLessThanOrEqual(3);

    // bob: 176x144 at 10 fps, from 0.8 s, camera off 1.4-1.8 s, gone at 2.4 s; 16 kHz stereo throughout.
    const bobVideo = framesOf(events, 'videoFrame', 'bob');
    expect(new Set(bobVideo.map((frame) => frame.data.length))).toEqual(new Set([38_016]));
    expectPaced(bobVideo.filter((frame) => frame.timestampMs < 1_400), 800, 100, 6);
    expectPaced(bobVideo.filter((frame) => frame.timestampMs >= 1_400), 1_800, 100, 6);
    const bobAudio = framesOf(events, 'audioFrame', 'bob');
    expect(new Set(bobAudio.map((frame) => `${frame.sampleRate}/${frame.channels}:${frame.data.length}`))).toEqual(new Set(['16000/2:1280']));
    expectPaced(bobAudio, 800, 20, 80);

    // Real pictures and tones: a varying pattern, not a blank buffer.
    expect(aliceVideo[0]!.data.equals(aliceVideo[1]!.data)).toBe(false);
    expect(bobVideo[0]!.data.subarray(0, 176 * 144).equals(aliceVideo[0]!.data.subarray(0, 176 * 144))).toBe(false);
    expect(Math.max(...Array.from({ length: 960 }, (_, i) => Math.abs(aliceAudio[10]!.data.readInt16LE(i * 2))))).toBeGreaterThan(1000);
  });

  it('kick() ends at once with exited("kicked"), and leaves no ffmpeg behind', async () => {
    const room = createRoomSimulator(parseRoomScenario({ anchors: [{ userId: 'alice' }], end: { at: 30, reason: 'dismissed' } }), {
      ffmpegPath: simulatorFfmpeg,
    });
    const { events } = await enterObserved(room);
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(framesOf(events, 'videoFrame', 'alice').length).toBeGreaterThan(5);
    expect(runningProcessesMatching(simulatorFfmpeg)).toHaveLength(2);

    room.kick();
    expect(events.at(-1)!.args).toEqual(['kicked']);
    await room.leave();
    expect(events.filter((event) => event.name === 'exited')).toHaveLength(1);
    expect(runningProcessesMatching(simulatorFfmpeg)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(events.at(-1)!.name).toBe('exited');
  });

  it('leave() ends promptly with exited("left"), and leaves no ffmpeg behind', async () => {
    const room = createRoomSimulator(
      parseRoomScenario({ anchors: [{ userId: 'alice' }, { userId: 'bob', joinAt: 5 }], end: { at: 30, reason: 'kicked' } }),
      { ffmpegPath: simulatorFfmpeg },
    );
    const { events } = await enterObserved(room);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const leaving = performance.now();
    await room.leave();
    expect(performance.now() - leaving).toBeLessThan(1_000);
    expect(events.at(-1)!.args).toEqual(['left']);
    expect(runningProcessesMatching(simulatorFfmpeg)).toEqual([]);
    await expect(room.enter(target, {} as RoomListener)).rejects.toMatchObject({ code: 'RoomEnterFailed' });
  });

  it('reports an ffmpeg that cannot run through error()', async () => {
    const room = createRoomSimulator(parseRoomScenario({ anchors: [{ userId: 'alice', video: false }], end: { at: 30, reason: 'dismissed' } }), {
      ffmpegPath: path.join(workDir, 'missing-ffmpeg'),
    });
    const { events } = await enterObserved(room);
    await expect.poll(() => events.find((event) => event.name === 'error')?.args).toEqual([-1, expect.stringMatching(/alice's audio: ffmpeg could not start/)]);
    await room.leave();
  });
});

describe('room scenario', () => {
  it('fills in defaults for the minimal scenario', () => {
    expect(
      parseRoomScenario({
        anchors: [{ userId: 'alice', audio: true, video: true, joinAt: 0, leaveAt: null }],
        end: { at: 10, reason: 'dismissed' },
      }),
    ).toEqual({
      anchors: [
        {
          userId: 'alice',
          audio: true,
          video: true,
          joinAt: 0,
          leaveAt: null,
          width: 640,
          height: 360,
          fps: 15,
          sampleRate: 48000,
          channels: 1,
          audioOff: [],
          videoOff: [],
          syncPattern: false,
        },
      ],
      end: { at: 10, reason: 'dismissed' },
    });
  });

  it('accepts an anchor who leaves and comes back as two presences of one userId', () => {
    const scenario = parseRoomScenario({
      anchors: [
        { userId: 'alice', joinAt: 0, leaveAt: 2 },
        { userId: 'alice', joinAt: 3, width: 320, height: 180 },
      ],
      end: { at: 5, reason: 'kicked' },
    });
    expect(scenario.anchors.map((anchor) => [anchor.joinAt, anchor.leaveAt, anchor.width])).toEqual([
      [0, 2, 640],
      [3, null, 320],
    ]);
  });

  function issuesOf(json: unknown) {
    try {
      parseRoomScenario(json);
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      return (error as ValidationError).issues;
    }
    throw new Error('expected a validation error');
  }

  it('names every bad field', () => {
    const issues = issuesOf({
      anchors: [{ userId: '', width: 641, fps: 0, sampleRate: 22050, channels: 3, leave_at: 5 }],
      end: { at: 0, reason: 'left' },
    });
    expect(issues.map((issue) => issue.field).sort()).toEqual([
      'anchors.0.channels',
      'anchors.0.fps',
      'anchors.0.leave_at',
      'anchors.0.sampleRate',
      'anchors.0.userId',
      'anchors.0.width',
      'end.at',
      'end.reason',
    ]);
    expect(issues.find((issue) => issue.field === 'anchors.0.leave_at')!.message).toBe('unknown field');
    expect(issues.find((issue) => issue.field === 'end.reason')!.message).toBe('must be dismissed or kicked');
    expect(issuesOf({ anchors: [] })).toEqual([{ field: 'end', message: expect.any(String) }]);
  });

  it('checks the timeline: windows in order, no overlaps, mutes inside the presence', () => {
    const issues = issuesOf({
      anchors: [
        { userId: 'alice', joinAt: 2, leaveAt: 1 },
        { userId: 'bob', joinAt: 0, leaveAt: 3 },
        { userId: 'bob', joinAt: 2.5 },
        { userId: 'carol', video: false, videoOff: [{ from: 1 }] },
        { userId: 'dave', joinAt: 1, leaveAt: 3, audioOff: [{ from: 0.5, to: 4 }] },
        { userId: 'erin', joinAt: 12 },
      ],
      end: { at: 10, reason: 'kicked' },
    });
    expect(issues).toEqual([
      { field: 'anchors.0.leaveAt', message: 'must be after joinAt' },
      { field: 'anchors.2.joinAt', message: expect.stringContaining('overlaps the earlier presence of bob (anchors.1)') },
      { field: 'anchors.3.videoOff', message: 'applies only when video is true' },
      { field: 'anchors.4.audioOff.0.from', message: 'must be after joinAt' },
      { field: 'anchors.4.audioOff.0.to', message: expect.stringContaining('must be before leaveAt') },
      { field: 'anchors.5.joinAt', message: 'must be before end.at' },
    ]);
  });
});
