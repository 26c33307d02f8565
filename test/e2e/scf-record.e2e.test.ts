import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordHandler, type RecordHandlerDependencies } from '../../functions/scf-record';
import type { RecordResult } from '../../shared/recording/record-job';
import { createRoomSimulator, parseRoomScenario, type RoomSimulator } from '../../shared/sources/room-simulator';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';
import { startTrtcApiEmulator } from '../emulators/trtc-api-emulator';
import { decodeMedia, firstPictureLuma, probe, type ProbeResult } from '../support/media-tools';
import { capturingStderr, processesUnderWorkRoot } from '../support/process';
import { okMessage } from '../support/results';

const cosKeys = { SecretId: 'AKIDcosTEST', SecretKey: 'cos-secret-value-xyz' };
const apiKeys = { secretId: 'AKIDapiTEST', secretKey: 'api-secret-value-xyz' };
const bucket = 'records-1250000000';
const userSig = 'eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwpklqUWpAFJ*UserSigSecret';

let cos: CosEmulator;
let trtcApi: Awaited<ReturnType<typeof startTrtcApiEmulator>>;
let callbackUrl: string;
let workRoot: string;
const callbacks: Array<{ headers: IncomingHttpHeaders; body: RecordResult }> = [];
const closeCallbackServer: Array<() => void> = [];

beforeAll(async () => {
  const receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      callbacks.push({ headers: request.headers, body: JSON.parse(body) });
      response.end('ok');
    });
  }).listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  callbackUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/recorded`;
  closeCallbackServer.push(() => receiver.close());
  [cos, trtcApi, workRoot] = await Promise.all([
    startCosEmulator({ secretId: cosKeys.SecretId, secretKey: cosKeys.SecretKey }),
    startTrtcApiEmulator(apiKeys),
    mkdtemp(join(tmpdir(), 'scf-e2e-')),
  ]);
});
afterAll(async () => {
  closeCallbackServer.forEach((close) => close());
  await Promise.all([cos?.close(), trtcApi?.close()]);
});

const env = (extra: Record<string, string> = {}) => ({
  COS_ENDPOINT: cos.endpoint,
  TRTC_API_ENDPOINT: trtcApi.endpoint,
  TENCENTCLOUD_SECRETID: apiKeys.secretId,
  TENCENTCLOUD_SECRETKEY: apiKeys.secretKey,
  MEDIA_TMP_DIR: workRoot,
  LOG_LEVEL: 'warn',
  ...extra,
});

let roomCounter = 0;
function recordRequest(overrides: Record<string, unknown> = {}) {
  return {
    SdkAppId: 1400000001,
    RoomId: 1000 + ++roomCounter,
    UserId: 'recorder_1',
    UserSig: userSig,
    CosConfig: { ...cosKeys, Region: 'ap-guangzhou', Bucket: bucket, Path: '/classes/' },
    Mode: '02',
    Callback: callbackUrl,
    ...overrides,
  };
}

/** A handler whose room is a fresh simulator of `scenario`; `rooms` collects them. */
function simulatedHandler(scenario: unknown, extraEnv: Record<string, string> = {}, rooms: RoomSimulator[] = []) {
  const deps: RecordHandlerDependencies = {
    env: env(extraEnv),
    createRoom: () => {
      const room = createRoomSimulator(parseRoomScenario(scenario));
      rooms.push(room);
      return room;
    },
  };
  return createRecordHandler(deps);
}

const twoAnchors = (endAt: number, reason = 'dismissed') => ({
  anchors: [
    { userId: 'alice', joinAt: 0, leaveAt: null },
    { userId: 'bob', joinAt: 1, leaveAt: 2.5, sampleRate: 16000, width: 320, height: 240 },
  ],
  end: { at: endAt, reason },
});

async function probeStored(recordFileUrl: string, suffix: string): Promise<ProbeResult> {
  const key = decodeURIComponent(new URL(recordFileUrl).pathname.slice(1));
  const body = cos.getObject(bucket, key);
  expect(body, `stored object ${key}`).toBeDefined();
  const file = join(workRoot, `probe-${++roomCounter}.${suffix}`);
  await writeFile(file, body!);
  return probe(file);
}

/** Bytes of every file under a directory. */
async function duBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

const codecs = (info: ProbeResult) => info.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort();

describe('SCF recorder, end to end (room simulator, COS emulator, callback receiver)', () => {
  it.each([
    ['00', 'mp3', ['audio:mp3']],
    ['01', 'mp4', ['video:h264']],
    ['02', 'mp4', ['audio:aac', 'video:h264']],
  ])('mode %s records each anchor to its own %s with the scenario timing', async (mode, suffix, expectedCodecs) => {
    const request = recordRequest({ Mode: mode });
    const result = (await simulatedHandler(twoAnchors(3.5))(request, { request_id: `mode-${mode}` })) as RecordResult;

    expect(result).toMatchObject({ SdkAppId: request.SdkAppId, RoomId: request.RoomId, UserId: 'recorder_1', StrRoomId: null, StopReason: 'dismissed' });
    expect(result.Files.map((f) => f.UserId).sort()).toEqual(['alice', 'bob']);
    for (const file of result.Files) {
      expect(file, file.Message).toMatchObject({ Status: 1, Message: okMessage });
      expect(file.RecordFile).toMatch(new RegExp(`^https://${bucket}\\.cos\\.ap-guangzhou\\.myqcloud\\.com/classes/${request.RoomId}/${file.UserId}/\\d{14}-mode-${mode}\\.${suffix}$`));
      const info = await probeStored(file.RecordFile, suffix);
      expect(codecs(info)).toEqual(expectedCodecs);
      expect(info.format).toContain(suffix === 'mp3' ? 'mp3' : 'mp4');
      const expected = file.UserId === 'alice' ? 3.5 : 1.5;
      expect(Math.abs(info.duration! - expected), `${file.UserId} lasted ${info.duration}s`).toBeLessThan(0.5);
    }
    const delivered = callbacks.find((c) => c.body.RequestId === `mode-${mode}`);
    expect(delivered?.body.Files).toEqual(result.Files);
    expect(result.Callback).toMatchObject({ delivered: true });
  });

  it("starts each anchor's video at its first picture: no first frame or first snapshot is black, and audio and video last as long", async () => {
    const request = recordRequest({ Mode: '02', SnapshotInterval: 1 });
    const result = (await simulatedHandler(twoAnchors(3.5))(request, { request_id: 'first-picture' })) as RecordResult;
    expect(result.Files.map((f) => f.UserId).sort()).toEqual(['alice', 'bob']);
    for (const file of result.Files) {
      const body = cos.getObject(bucket, decodeURIComponent(new URL(file.RecordFile).pathname.slice(1)))!;
      // Black is 16 in the recording's video range; the test patterns average around 100.
      expect(await firstPictureLuma(body, 'mp4'), `${file.UserId}'s first video frame`).toBeGreaterThan(40);
      const media = await decodeMedia(body, 'mp4');
      const [video, audio] = ['video', 'audio'].map((type) => media.streams.find((stream) => stream.type === type)!);
      expect(Math.abs(video!.startTime! - audio!.startTime!), JSON.stringify(media.streams)).toBeLessThan(0.01);
      // Within a video frame (1/15 s) and an AAC frame (1024 samples: 64 ms at bob's 16 kHz).
      expect(Math.abs(video!.duration! - audio!.duration!), JSON.stringify(media.streams)).toBeLessThan(1 / 15 + 0.064);
    }
    expect(result.Snapshots?.map((s) => s.UserId).sort()).toEqual(['alice', 'bob']);
    for (const anchor of result.Snapshots!) {
      // Black is 0 in a full-range JPEG.
      expect(await firstPictureLuma(cos.getObject(bucket, anchor.FirstKey!)!, 'jpg'), `${anchor.UserId}'s first snapshot`).toBeGreaterThan(40);
    }
  });

  it('keeps an anchor who leaves and returns in one file, with the time away kept', async () => {
    const scenario = {
      anchors: [
        { userId: 'carol', joinAt: 0, leaveAt: 1 },
        { userId: 'carol', joinAt: 2, leaveAt: null },
      ],
      end: { at: 3.5, reason: 'dismissed' },
    };
    const result = (await simulatedHandler(scenario)(recordRequest(), { request_id: 'rejoin' })) as RecordResult;
    expect(result.Files).toHaveLength(1);
    const info = await probeStored(result.Files[0]!.RecordFile, 'mp4');
    expect(Math.abs(info.duration! - 3.5)).toBeLessThan(0.5);
  });

  it('stops when kicked by the Stop action, through the TC3-signed RemoveUser endpoint', async () => {
    const rooms: RoomSimulator[] = [];
    const handler = simulatedHandler(twoAnchors(60), { CONTROL_SECRET: 'e2e-control-secret-0123456789' }, rooms);
    trtcApi.onRemoveUser((call) => {
      if (call.params.UserIds.includes('recorder_1')) rooms.forEach((room) => room.kick());
    });
    const request = recordRequest({ RoomId: undefined, StrRoomId: 'class-7b' });
    const recording = handler(request, { request_id: 'kicked' }) as Promise<RecordResult>;
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const stopEvent = { httpMethod: 'POST', headers: { authorization: 'Bearer e2e-control-secret-0123456789' }, isBase64Encoded: false, body: JSON.stringify({ Action: 'Stop', SdkAppId: 1400000001, StrRoomId: 'class-7b', UserId: 'recorder_1' }) };
    const stopAnswer = (await handler(stopEvent, { request_id: 'stop' })) as { statusCode: number; body: string };
    expect(stopAnswer.statusCode).toBe(200);
    expect(JSON.parse(stopAnswer.body)).toMatchObject({ Action: 'Stop', StrRoomId: 'class-7b', TrtcRequestId: expect.any(String) });
    expect(trtcApi.calls.at(-1)).toMatchObject({ action: 'RemoveUserByStrRoomId', params: { RoomId: 'class-7b', UserIds: ['recorder_1'] } });

    const result = await recording;
    expect(result).toMatchObject({ StopReason: 'kicked', StrRoomId: 'class-7b', RoomId: null });
    expect(result.Files.every((f) => f.Status === 1)).toBe(true);
    expect(result.Files[0]!.RecordFile).toContain('/classes/class-7b/');
    expect(callbacks.some((c) => c.body.RequestId === 'kicked')).toBe(true);
  });

  it('stops before the deadline with time to finalise and upload', async () => {
    const started = Date.now();
    const result = (await simulatedHandler(twoAnchors(60))(recordRequest({ Mode: '00' }), { request_id: 'deadline', time_limit_in_ms: 6_000 })) as RecordResult;
    expect(Date.now() - started).toBeLessThan(6_000);
    expect(result.StopReason).toBe('deadline');
    expect(result.Files.every((f) => f.Status === 1)).toBe(true);
    expect(callbacks.some((c) => c.body.RequestId === 'deadline')).toBe(true);
  });

  it('keeps local disk at a few MB however long it records: everything streams to COS', async () => {
    const scenario = { anchors: [{ userId: 'dave', width: 640, height: 360 }], end: { at: 8, reason: 'dismissed' } };
    const diskRoot = await mkdtemp(join(tmpdir(), 'scf-disk-'));
    let largest = 0;
    const sampler = setInterval(() => void duBytes(diskRoot).then((bytes) => (largest = Math.max(largest, bytes))), 200);
    const result = (await simulatedHandler(scenario, { MEDIA_TMP_DIR: diskRoot })(recordRequest(), { request_id: 'disk' })) as RecordResult;
    clearInterval(sampler);
    const [file] = result.Files;
    expect(file).toMatchObject({ Status: 1, Message: okMessage });
    expect(file!.Size).toBeGreaterThan(512 * 1024);
    expect(largest).toBeLessThan(256 * 1024); // the owner file, nothing of the recording
    expect(codecs(await probeStored(file!.RecordFile, 'mp4'))).toEqual(['audio:aac', 'video:h264']);
  });

  it('finishes and uploads on SIGTERM, and leaves no ffmpeg behind', async () => {
    const scenario = JSON.stringify(twoAnchors(60));
    const bucketRoot = await mkdtemp(join(tmpdir(), 'scf-cli-'));
    const event = JSON.stringify(recordRequest());
    const cli = spawn(process.execPath, ['--import', 'tsx', 'scripts/scf-invoke.ts', '--event', event, '--room', `sim:${scenario}`, '--local-bucket-root', bucketRoot], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'warn', MEDIA_TMP_DIR: workRoot },
    });
    let stdout = '';
    cli.stdout!.on('data', (chunk) => (stdout += chunk));
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    cli.kill('SIGTERM');
    const [code] = await once(cli, 'exit');
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as RecordResult;
    expect(code).toBe(0);
    expect(result.StopReason).toBe('terminated');
    expect(result.Files.map((f) => [f.UserId, f.Status]).sort()).toEqual([['alice', 1], ['bob', 1]]);
    const stored = await readdir(join(bucketRoot, bucket, 'classes', String(JSON.parse(event).RoomId), 'alice'));
    expect(stored).toHaveLength(1);
    expect(await processesUnderWorkRoot(workRoot)).toEqual([]);
    expect(callbacks.some((c) => c.body.StopReason === 'terminated' && c.body.RoomId === JSON.parse(event).RoomId)).toBe(true);
  });
});

describe('SCF recorder: local runners and logs', () => {
  it('serves the handler over HTTP like the API gateway (npm run scf:serve)', async () => {
    const bucketRoot = await mkdtemp(join(tmpdir(), 'scf-serve-'));
    const port = 20000 + Math.floor(Math.random() * 20000);
    const scenario = JSON.stringify({ anchors: [{ userId: 'erin' }], end: { at: 2, reason: 'dismissed' } });
    const server = spawn(process.execPath, ['--import', 'tsx', 'scripts/scf-serve.ts', '--port', String(port), '--room', `sim:${scenario}`, '--local-bucket-root', bucketRoot], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'warn', MEDIA_TMP_DIR: workRoot },
    });
    try {
      await new Promise<void>((resolve) => server.stderr!.on('data', (chunk) => String(chunk).includes('listening') && resolve()));
      const answer = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: JSON.stringify(recordRequest({ Callback: undefined, Mode: '00' })) });
      expect(answer.status).toBe(200);
      const result = (await answer.json()) as RecordResult;
      expect(result.Files).toMatchObject([{ UserId: 'erin', Status: 1 }]);
      const invalid = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: '{"SdkAppId":' });
      expect(invalid.status).toBe(400);
    } finally {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
  });

  it('never writes SecretKey or UserSig to a log line', async () => {
    const scenario = { anchors: [{ userId: 'fay' }], end: { at: 1.5, reason: 'kicked' } };
    const { lines } = await capturingStderr(() => simulatedHandler(scenario, { LOG_LEVEL: 'debug' })(recordRequest({ Mode: '00' }), { request_id: 'logs' }));
    const log = lines.join('');
    expect(log).toContain('"requestId":"logs"');
    expect(log).not.toMatch(/cos-secret-value-xyz|UserSigSecret/);
  });
});

describe('SCF recorder: bad requests', () => {
  it('answers at once, naming each bad field, starting nothing, echoing no secret', async () => {
    let roomsStarted = 0;
    const handler = createRecordHandler({ env: env(), createRoom: () => (roomsStarted++, createRoomSimulator(parseRoomScenario(twoAnchors(1)))) });
    const asGateway = (body: string) => ({ httpMethod: 'POST', headers: { 'content-type': 'application/json' }, body, isBase64Encoded: false });
    const cases = [
      asGateway('{"SdkAppId": '),
      asGateway(JSON.stringify({ ...recordRequest(), SdkAppId: 'x', UserSig: 42 })),
      asGateway(JSON.stringify({ ...recordRequest(), Callback: 'http://100.100.100.200/latest/meta-data' })),
      asGateway(JSON.stringify({ ...recordRequest(), CosConfig: { ...recordRequest().CosConfig, SecretId: undefined } })),
      asGateway(JSON.stringify({ ...recordRequest(), RoomId: undefined, Mode: '9' })),
      { ...asGateway(JSON.stringify(recordRequest())), httpMethod: 'GET' },
    ];
    for (const event of cases) {
      const answer = (await handler(event, { request_id: 'bad' })) as { statusCode: number; body: string };
      expect(answer.statusCode, answer.body).toBe(400);
      const body = JSON.parse(answer.body);
      expect(body.Error).toMatchObject({ Code: 'InvalidInput', Fields: expect.any(Array) });
      expect(answer.body).not.toMatch(/cos-secret-value-xyz|UserSigSecret|api-secret-value-xyz/);
    }
    expect(roomsStarted).toBe(0);
  });

  it('answers a Stop on a deployment without TencentCloud keys 500, for the operator, reaching nothing and echoing no secret', async () => {
    const secret = 'e2e-control-secret-no-keys-0123';
    const handler = createRecordHandler({ env: { ...env({ CONTROL_SECRET: secret }), TENCENTCLOUD_SECRETID: undefined, TENCENTCLOUD_SECRETKEY: undefined } });
    const requestsBefore = trtcApi.requests.length;
    const stop = { httpMethod: 'POST', headers: { authorization: `Bearer ${secret}` }, isBase64Encoded: false, body: JSON.stringify({ Action: 'Stop', SdkAppId: 1400000001, RoomId: 1234, UserId: 'recorder_1' }) };
    const { value: answer, lines } = await capturingStderr(async () => (await handler(stop, { request_id: 'stop-no-keys' })) as { statusCode: number; body: string });
    expect(answer.statusCode).toBe(500);
    expect(JSON.parse(answer.body).Error).toMatchObject({ Code: 'MissingCredentials', Message: expect.stringMatching(/operator .*execution role .*TENCENTCLOUD_SECRETID/) });
    expect(trtcApi.requests.length).toBe(requestsBefore);
    expect(answer.body + lines.join('')).not.toContain(secret);
  });

  it.each([
    [{ TRTC_ROOM_SDK: 'electron' }, 'trtc-electron-sdk'],
    [{ TRTC_ROOM_SDK: 'elektron' }, 'TRTC_ROOM_SDK=elektron names no room SDK: use liteav or electron'],
    [{ TRTC_LITEAV_PYTHON: '/nonexistent/python3' }, 'no Python at /nonexistent/python3 for the TRTC room'],
    [{ TRTC_LITEAV_PYTHON: '/usr/bin/python3' }, 'liteav cannot be imported by /usr/bin/python3'],
  ])('says exactly what is missing when the production room cannot start (%o)', async (extraEnv, message) => {
    const result = (await createRecordHandler({ env: env(extraEnv) })(recordRequest({ Callback: undefined }), { request_id: 'no-sdk' })) as RecordResult;
    expect(result.Error).toMatchObject({ Code: 'TrtcSdkUnavailable', Message: expect.stringContaining(message) });
    expect(result.Files).toEqual([]);
  });
});
