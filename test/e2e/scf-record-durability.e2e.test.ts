/**
 * The recorder stores while it records: a SIGKILL, an outage, a bucket that refuses appends or a
 * lost answer loses (almost) nothing, and every stored object is a file that decodes to the end
 * and plays and seeks in a browser. Room simulator + COS emulator, through the real COS SDK.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordHandler } from '../../functions/scf-record';
import type { RecordedFile, RecordResult } from '../../shared/recording/record-job';
import { createRoomSimulator, parseRoomScenario } from '../../shared/sources/room-simulator';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';
import { describeWithBrowser, startStaticServer, type StaticServer } from '../support/browser';
import { decodeMedia, type DecodedMedia } from '../support/media-tools';
import { processesUnderWorkRoot, runningProcessesMatching } from '../support/process';

const cosKeys = { SecretId: 'AKIDdurable', SecretKey: 'durable-cos-secret' };
const bucket = 'durable-1250000000';
let cos: CosEmulator;
let workRoot: string;
let room = 5000;

beforeAll(async () => {
  [cos, workRoot] = await Promise.all([startCosEmulator({ secretId: cosKeys.SecretId, secretKey: cosKeys.SecretKey }), mkdtemp(join(tmpdir(), 'scf-durable-'))]);
});
afterAll(() => cos?.close());

const env = (extra: Record<string, string> = {}) => ({ COS_ENDPOINT: cos.endpoint, MEDIA_TMP_DIR: workRoot, LOG_LEVEL: 'warn', ...extra });

function request(overrides: Record<string, unknown> = {}) {
  return {
    SdkAppId: 1400000001,
    RoomId: ++room,
    UserId: 'recorder_1',
    UserSig: 'sig',
    CosConfig: { ...cosKeys, Region: 'ap-guangzhou', Bucket: bucket, Path: '/durable/' },
    Mode: '02',
    ...overrides,
  };
}

const scenario = (endAt: number, anchors = [{ userId: 'alice', width: 320, height: 180 }, { userId: 'bob', joinAt: 1, width: 320, height: 180 }]) => ({
  anchors,
  end: { at: endAt, reason: 'dismissed' },
});

function handlerFor(roomScenario: unknown, extraEnv: Record<string, string> = {}) {
  return createRecordHandler({ env: env(extraEnv), createRoom: () => createRoomSimulator(parseRoomScenario(roomScenario)) });
}

const keyOf = (file: RecordedFile) => decodeURIComponent(new URL(file.RecordFile).pathname.slice(1));
const extensionOf = (key: string) => key.slice(key.lastIndexOf('.') + 1);

/** Decodes the stored object to the end; its video (or audio) frame count must match its length. */
async function decodeStored(key: string): Promise<DecodedMedia> {
  const body = cos.getObject(bucket, key);
  expect(body, `stored object ${key}`).toBeDefined();
  return decodeMedia(body!, extensionOf(key));
}

function expectWhole(decoded: DecodedMedia, seconds: number, label: string): void {
  expect(Math.abs(decoded.duration! - seconds), `${label}: ${decoded.duration} s stored, ${seconds} s expected`).toBeLessThan(0.6);
  const video = decoded.streams.find((stream) => stream.type === 'video');
  // 15 fps, each frame once: a fragment stored twice or lost would show here.
  if (video) expect(Math.abs(video.frames - seconds * 15), `${label}: ${video.frames} video frames`).toBeLessThanOrEqual(9);
}

describe('the recorder stores while it records', () => {
  // sidecar-sim: the room is the liteav room process (its simulated room), which must also end by itself.
  it.each([
    [5, 'sim'],
    [9, 'sim'],
    [7, 'sidecar-sim'],
  ] as const)('leaves playable objects after a SIGKILL %s s in (room: %s), and neither its encoders nor its room process outlive it', async (killAt, room) => {
    const tmp = await mkdtemp(join(workRoot, 'kill-'));
    const hostRequest = request();
    const host = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/record-host.ts', JSON.stringify(hostRequest), JSON.stringify(scenario(60)), room], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, ...env({ MEDIA_TMP_DIR: tmp }) },
    });
    await new Promise((resolve) => setTimeout(resolve, killAt * 1000));
    const roomProcesses = async () => (await processesUnderWorkRoot(tmp)).filter((pid) => runningProcessesMatching('room_process.py').includes(pid));
    if (room === 'sidecar-sim') expect(await roomProcesses()).toHaveLength(1);
    host.kill('SIGKILL');
    await once(host, 'exit');

    // The room process leaves and exits by itself within 5 s (its stdin closes; PR_SET_PDEATHSIG).
    await expect.poll(roomProcesses, { timeout: 5_000, interval: 100 }).toEqual([]);
    // The encoders see their input end and their output pipe break: they exit on their own, as do
    // the simulated anchors' ffmpegs when the room process is gone.
    await expect.poll(() => processesUnderWorkRoot(tmp), { timeout: 10_000, interval: 200 }).toEqual([]);

    const keys = cos.listKeys(bucket, `durable/${hostRequest.RoomId}/`);
    // A recording gets its first append with its first fragment: alice's has been stored by now.
    expect(keys.map((key) => key.split('/')[2])).toContain('alice');
    for (const key of keys) {
      const decoded = await decodeStored(key);
      const anchorSeconds = killAt - (key.includes('/bob/') ? 1 : 0);
      // At most one fragment (2 s) and one append interval (2 s) not stored yet, plus start-up.
      expect(decoded.duration!, key).toBeGreaterThan(anchorSeconds - 5.5);
      expect(decoded.duration!, key).toBeLessThanOrEqual(anchorSeconds + 0.5);
      expect(decoded.streams.map((s) => s.codec).sort()).toEqual(['aac', 'h264']);
    }
  });

  it('loses nothing to a 10 s COS outage across the end of the room, and reports every file stored', async () => {
    const received: RecordResult[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk)).on('end', () => {
        received.push(JSON.parse(body));
        res.end('ok');
      });
    }).listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    const callback = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/done`;
    try {
      const outageStarts = setTimeout(() => cos.setOutage(true), 4_000);
      const outageEnds = setTimeout(() => cos.setOutage(false), 14_000);
      const started = Date.now();
      const result = (await handlerFor(scenario(8))(request({ Callback: callback }), { request_id: 'outage', time_limit_in_ms: 120_000 })) as RecordResult;
      clearTimeout(outageStarts);
      clearTimeout(outageEnds);
      cos.setOutage(false);
      expect(Date.now() - started).toBeGreaterThan(14_000); // it waited the outage out
      expect(cos.requests.some((entry) => entry.fault === 'outage')).toBe(true);
      expect(result.Files?.map((file) => [file.UserId, file.Status, file.Message]), JSON.stringify(result)).toEqual([
        ['alice', 1, 'ok'],
        ['bob', 1, 'ok'],
      ]);
      for (const file of result.Files) {
        expect(cos.getObject(bucket, keyOf(file))!.length).toBe(file.Size);
        expectWhole(await decodeStored(keyOf(file)), file.UserId === 'alice' ? 8 : 7, file.UserId);
      }
      expect(received).toHaveLength(1);
      expect(received[0]!.Files.every((file) => file.Status === 1)).toBe(true);
    } finally {
      receiver.close();
      cos.setOutage(false);
    }
  });

  it('uploads in parts, completed at the end, when the bucket refuses appends', async () => {
    cos.setFaults({ refuseAppends: true });
    try {
      const result = (await handlerFor(scenario(4))(request(), { request_id: 'multipart' })) as RecordResult;
      for (const file of result.Files) {
        expect(file).toMatchObject({ Status: 1, Message: expect.stringContaining('multipart') });
        expectWhole(await decodeStored(keyOf(file)), file.UserId === 'alice' ? 4 : 3, file.UserId);
      }
      const forThisRoom = cos.requests.filter((entry) => entry.key.startsWith(`durable/${room}/`));
      expect(forThisRoom.filter((entry) => entry.query.includes('append')).map((entry) => entry.status)).toEqual([409, 409]);
      // Parts of 8 MiB: a 4 s recording is under one, so it goes up in one PUT at the end.
      expect(forThisRoom.filter((entry) => entry.method === 'PUT').length).toBeGreaterThanOrEqual(2);
    } finally {
      cos.setFaults({ refuseAppends: false });
    }
  });

  it('appends exactly once when answers get lost, resyncing from the object length', async () => {
    // Every third request is carried out and then left unanswered.
    let draws = 0;
    cos.setFaults({ lostResponseRate: 0.5, random: () => (++draws % 3 === 0 ? 0 : 0.99) });
    try {
      const result = (await handlerFor(scenario(6))(request(), { request_id: 'lost' })) as RecordResult;
      expect(cos.requests.some((entry) => entry.fault?.includes('lostResponse') && entry.query.includes('append'))).toBe(true);
      for (const file of result.Files) {
        expect(file.Status, file.Message).toBe(1);
        expect(cos.getObject(bucket, keyOf(file))!.length).toBe(file.Size);
        expectWhole(await decodeStored(keyOf(file)), file.UserId === 'alice' ? 6 : 5, file.UserId);
      }
    } finally {
      cos.setFaults({ lostResponseRate: 0, random: Math.random });
    }
  });

  it('never lets a slow callback run past the deadline', async () => {
    const receiver = createServer(() => undefined).listen(0, '127.0.0.1'); // accepts, never answers
    await once(receiver, 'listening');
    try {
      const callback = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/slow`;
      const started = Date.now();
      const result = (await handlerFor(scenario(60))(request({ Mode: '00', Callback: callback }), { request_id: 'slow-callback', time_limit_in_ms: 8_000 })) as RecordResult;
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(result).toMatchObject({ StopReason: 'deadline', Callback: { delivered: false } });
      expect(result.Files.every((file) => file.Status === 1)).toBe(true);
    } finally {
      receiver.closeAllConnections();
      receiver.close();
    }
  });
});

describeWithBrowser('stored recordings in Chromium', (browser) => {
  let server: StaticServer;
  let served: string;
  beforeAll(async () => {
    served = await mkdtemp(join(tmpdir(), 'served-recordings-'));
    server = await startStaticServer(served);
  });
  afterAll(() => server?.close());

  it.each([
    ['00', 'audio'],
    ['01', 'video'],
    ['02', 'video'],
  ] as const)('mode %s plays and seeks, and so does a recording cut by a SIGKILL', async (mode, kind) => {
    const result = (await handlerFor(scenario(6, [{ userId: 'alice', width: 320, height: 180 }]))(request({ Mode: mode }), { request_id: `browser-${mode}` })) as RecordResult;
    const [file] = result.Files;
    expect(file?.Status, file?.Message).toBe(1);
    const name = `mode-${mode}.${extensionOf(keyOf(file!))}`;
    await writeFile(join(served, name), cos.getObject(bucket, keyOf(file!))!);
    const check = await browser().checkMedia(server.url(name), { kind, seekTo: 4 });
    expect(check.error, JSON.stringify(check)).toBeNull();
    expect(check.duration).toBeGreaterThan(5.5);
    expect(check.play?.advanced).toBe(true);
    expect(check.seek?.seeked).toBe(true);
    expect(Math.abs(check.seek!.currentTime - 4)).toBeLessThan(0.6);
    if (kind === 'video') expect(check.seek?.frame?.presented).toBe(true);

    // Cut in the middle of a fragment, as a kill mid-append would leave it on a cloud that
    // applied part of a request: what is whole still plays and seeks.
    const cut = cos.getObject(bucket, keyOf(file!))!;
    await writeFile(join(served, `cut-${name}`), cut.subarray(0, Math.floor(cut.length * 0.7)));
    const cutCheck = await browser().checkMedia(server.url(`cut-${name}`), { kind, seekTo: 2 });
    expect(cutCheck.error, JSON.stringify(cutCheck)).toBeNull();
    expect(cutCheck.seek?.seeked).toBe(true);
  });
});
