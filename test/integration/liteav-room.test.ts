/**
 * The production room: Tencent's liteav SDK (13.2, from PyPI through `npm ci`) in its room process,
 * supervised by shared/sources/liteav/liteav-room.ts. Against the real SDK: no TRTC server can be
 * reached from here, so it runs in a loopback-only network namespace, where entering must fail
 * cleanly. The room process's own behaviour (events, subscription, back-pressure, dying with its
 * parent) is shown with its simulated room (`sidecar-sim`), which stands where the SDK's cloud
 * object stands behind the same delegate.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/log';
import { RECORDING_AUDIO } from '../../shared/outputs/recording/encoder-args';
import { createLiteavRoom, type LiteavRoomOptions } from '../../shared/sources/liteav/liteav-room';
import { parseRoomScenario, simulationPlan } from '../../shared/sources/room-simulator';
import { workDirEnv } from '../../shared/work-dirs';
import { LITEAV_VERSION, requireLiteav, requireNetworkNamespaces, runInLoopbackNamespace, venvPython } from '../support/liteav';
import { isProcessRunning, processesUnderWorkRoot, runningProcessesMatching } from '../support/process';
import { recordingListener } from '../support/room-listener';

const userSig = 'eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwpklqUWpAFJ*LiteavUserSig';
let workRoot: string;

beforeAll(async () => {
  requireLiteav();
  workRoot = await mkdtemp(join(tmpdir(), 'liteav-room-'));
});

/** A root of its own (the processes a test started are found by their work dir under it) and a work dir in it. */
async function freshRoot(name: string): Promise<{ root: string; workDir: string }> {
  const root = join(workRoot, name);
  const workDir = join(root, 'work');
  await mkdir(workDir, { recursive: true });
  return { root, workDir };
}

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe.concurrent('the real SDK, in a loopback-only network namespace', () => {
  beforeAll(() => requireNetworkNamespaces());

  it('loads liteav 13.2 and creates its cloud; entering fails with RoomEnterFailed naming the SDK code within 45 s; nothing left, no UserSig, SDK logs in the work dir', async () => {
    const { root, workDir } = await freshRoot('enter');
    const run = await runInLoopbackNamespace(process.execPath, ['--import', 'tsx', 'test/fixtures/liteav-room-host.ts', workDir, userSig], { timeoutMs: 60_000 });

    const logs = jsonLines(run.stderr);
    expect(logs.find((line) => line.msg === 'room process ready'), run.stderr).toMatchObject({ sdk: 'liteav', version: LITEAV_VERSION });
    // stdout holds the host's one result line: neither the SDK nor the room process writes there.
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    const result = JSON.parse(run.stdout);
    expect(result, run.stderr).toMatchObject({ outcome: 'failed', code: 'RoomEnterFailed' });
    expect(result.message).toMatch(/^entering the TRTC room failed: the SDK (reported ERR_\w+ \(-?\d+\) after [\d.]+ s|gave no answer in 30 s)/);
    expect(result.ms).toBeLessThan(45_000);
    expect(run.ms).toBeLessThan(45_000);
    expect(run.stdout + run.stderr).not.toContain(userSig);
    expect(await processesUnderWorkRoot(root)).toEqual([]);
    // The SDK's log files and caches went to the work dir (its default is ~/.cache).
    expect(readdirSync(join(workDir, 'liteav-log')).some((name) => name.endsWith('.clog'))).toBe(true);
    expect(existsSync(join(workDir, 'liteav-home', '.cache', 'python3', 'liteav'))).toBe(true);
  });

  it('SIGKILL of the function: the room process leaves and ends by itself within 5 s', async () => {
    const { root, workDir } = await freshRoot('kill');
    let roomPid = 0;
    let hostPid = 0;
    const run = runInLoopbackNamespace(process.execPath, ['--import', 'tsx', 'test/fixtures/liteav-room-host.ts', workDir, userSig], {
      timeoutMs: 60_000,
      onSpawn: (pid) => (hostPid = pid),
      onStderr: (text) => {
        const ready = jsonLines(text).find((line) => line.msg === 'room process ready');
        if (ready && !roomPid) {
          roomPid = Number(ready.pid);
          // `unshare` and `sh` exec the host: this pid is the Node process running the room.
          process.kill(hostPid, 'SIGKILL');
        }
      },
    });
    const { code } = await run;
    expect(code).toBeNull();
    expect(roomPid).toBeGreaterThan(0);
    const killedAt = Date.now();
    await expect.poll(() => isProcessRunning(roomPid), { timeout: 5_000, interval: 100 }).toBe(false);
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    expect(await processesUnderWorkRoot(root)).toEqual([]);
  });
});


let rooms = 0;
async function simulatedRoom(scenario: unknown, extra: Partial<LiteavRoomOptions> = {}) {
  const { root, workDir } = await freshRoot(`sim-${++rooms}`);
  const room = createLiteavRoom({
    python: venvPython,
    workDir,
    env: workDirEnv(workDir),
    audio: RECORDING_AUDIO,
    logger: createLogger({ requestId: `sim-${rooms}`, level: 'warn' }),
    simulation: simulationPlan(parseRoomScenario(scenario)),
    ...extra,
  });
  return { room, root };
}

const target = { sdkAppId: 1400000001, roomId: 42, userId: 'recorder', userSig };

describe('the room process, with its simulated room', () => {
  it('delivers presence, availability and each anchor\'s frames, then dismissed; the process and its ffmpegs end', async () => {
    const { room, root } = await simulatedRoom({
      anchors: [
        { userId: 'alice', width: 160, height: 120 },
        { userId: 'bob', joinAt: 0.5, leaveAt: 1.5, width: 160, height: 120, audioOff: [{ from: 0.8, to: 1.2 }] },
      ],
      end: { at: 2, reason: 'dismissed' },
    });
    const seen = recordingListener();
    await room.enter(target, seen.listener);
    expect(await seen.out).toBe('dismissed');
    const names = seen.events.filter(([name]) => !name.endsWith('Frame')).map(([name, ...args]) => `${name}:${args.join(',')}`);
    expect(names).toEqual([
      'anchorJoined:alice',
      'videoAvailable:alice,true',
      'audioAvailable:alice,true',
      'anchorJoined:bob',
      'videoAvailable:bob,true',
      'audioAvailable:bob,true',
      'audioAvailable:bob,false',
      'audioAvailable:bob,true',
      'videoAvailable:bob,false',
      'audioAvailable:bob,false',
      'anchorLeft:bob',
      'exited:dismissed',
    ]);
    const count = (frames: Array<{ userId: string }>, userId: string) => frames.filter((frame) => frame.userId === userId).length;
    // 20 ms audio at 48 kHz mono, 15 fps pictures of 160x120, on the room's clock.
    expect(count(seen.audio, 'alice')).toBeGreaterThanOrEqual(95);
    expect(count(seen.audio, 'bob')).toBeGreaterThanOrEqual(25);
    expect(count(seen.audio, 'bob')).toBeLessThanOrEqual(31);
    expect(count(seen.video, 'alice')).toBeGreaterThanOrEqual(28);
    expect(seen.audio[0]).toMatchObject({ sampleRate: 48_000, channels: 1, data: expect.any(Buffer) });
    expect(seen.audio[0]!.data.length).toBe(1920);
    expect(seen.video[0]).toMatchObject({ width: 160, height: 120 });
    expect(seen.video[0]!.data.length).toBe(160 * 120 * 1.5);
    await room.leave();
    expect(await processesUnderWorkRoot(root)).toEqual([]);
  });

  it('maps a kick (ERR_BANNED_BY_SERVER) to kicked, and leave() to left', async () => {
    const kicked = await simulatedRoom({ anchors: [{ userId: 'alice', width: 160, height: 120 }], end: { at: 60, reason: 'dismissed' } });
    const kickedSeen = recordingListener();
    await kicked.room.enter(target, kickedSeen.listener);
    setTimeout(() => kicked.room.kick(), 300);
    expect(await kickedSeen.out).toBe('kicked');

    const left = await simulatedRoom({ anchors: [{ userId: 'alice', width: 160, height: 120 }], end: { at: 60, reason: 'dismissed' } });
    const leftSeen = recordingListener();
    await left.room.enter(target, leftSeen.listener);
    const started = Date.now();
    await left.room.leave();
    expect(await leftSeen.out).toBe('left');
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(leftSeen.events.filter(([name]) => name === 'exited')).toHaveLength(1);
  });

  it('receives only the anchors subscribed to (the SDK\'s Unsubscribe), still telling who is in the room', async () => {
    const scenario = { anchors: ['alice', 'bob', 'carol'].map((userId) => ({ userId, width: 160, height: 120 })), end: { at: 1.5, reason: 'dismissed' } };
    for (const subscription of [{ allow: ['bob'] }, { deny: ['alice', 'carol'] }]) {
      const { room } = await simulatedRoom(scenario);
      const seen = recordingListener();
      await room.enter(target, seen.listener, subscription);
      await seen.out;
      expect(seen.events.filter(([name]) => name === 'anchorJoined').map(([, userId]) => userId)).toEqual(['alice', 'bob', 'carol']);
      expect(new Set([...seen.audio, ...seen.video].map((frame) => frame.userId))).toEqual(new Set(['bob']));
    }
  });

  // Pictures come through the room process's shared memory (its video ring), or through the pipe when Node cannot open it.
  it.each([
    ['through the video ring', true],
    ['through the pipe', false],
  ])('when Node reads too slowly, drops pictures (counted on the next one) and never audio (%s)', async (_how, videoRing) => {
    const { room } = await simulatedRoom({ anchors: [{ userId: 'alice', width: 1280, height: 720, fps: 30 }], end: { at: 4, reason: 'dismissed' } }, { videoRing });
    const seen = recordingListener();
    await room.enter(target, seen.listener);
    // Node busy 250 ms at a time: the room process must hold audio and shed pictures meanwhile.
    const stall = setInterval(() => {
      const until = Date.now() + 250;
      while (Date.now() < until);
    }, 300);
    await seen.out;
    clearInterval(stall);
    const dropped = seen.video.reduce((sum, frame) => sum + (frame.droppedBefore ?? 0), 0);
    expect(dropped, `${seen.video.length} pictures delivered`).toBeGreaterThan(0);
    expect(seen.video.length + dropped).toBeGreaterThanOrEqual(100);
    // Every 20 ms of audio of the 4 s, in order, none missing; every picture delivered whole.
    expect(seen.audio.length).toBeGreaterThanOrEqual(190);
    expect(seen.video.every((frame) => frame.data.length === 1280 * 720 * 1.5)).toBe(true);
    const gaps = seen.audio.slice(1).filter((frame, i) => frame.timestampMs < seen.audio[i]!.timestampMs);
    expect(gaps).toEqual([]);
  });

  it('reports a room process that dies mid-room as an error, out of the room', async () => {
    const { room, root } = await simulatedRoom({ anchors: [{ userId: 'alice', width: 160, height: 120 }], end: { at: 60, reason: 'dismissed' } });
    const seen = recordingListener();
    await room.enter(target, seen.listener);
    const roomProcess = (await processesUnderWorkRoot(root)).filter((pid) => runningProcessesMatching('room_process.py').includes(pid));
    expect(roomProcess).toHaveLength(1);
    process.kill(roomProcess[0]!, 'SIGKILL');
    expect(await seen.out).toBe('error');
    expect(seen.events.find(([name]) => name === 'error')).toEqual(['error', -1, expect.stringContaining('the TRTC room process exited (SIGKILL)')]);
    // Its simulated anchors' ffmpegs see their pipe close and exit.
    await expect.poll(() => processesUnderWorkRoot(root), { timeout: 5_000 }).toEqual([]);
  });

  it('an SDK that never answers: RoomEnterFailed after the enter timeout, and the process is ended', async () => {
    const silent = join(workRoot, 'silent.py');
    await writeFile(silent, 'import sys, time\nfor line in sys.stdin:\n    pass\ntime.sleep(60)\n');
    const { room, root } = await simulatedRoom({ anchors: [], end: { at: 1, reason: 'dismissed' } }, { script: silent, enterTimeoutMs: 1_000 });
    const seen = recordingListener();
    const started = Date.now();
    await expect(room.enter(target, seen.listener)).rejects.toMatchObject({ code: 'RoomEnterFailed', message: 'entering the TRTC room failed: the SDK gave no answer in 1 s' });
    expect(Date.now() - started).toBeLessThan(2_000);
    // It ignores its stdin closing: SIGTERM ends it, after the grace the room process gets.
    await expect.poll(() => processesUnderWorkRoot(root), { timeout: 8_000 }).toEqual([]);
  });
});
