/**
 * The room controls of the recorder (MaxIdleTime, SubscribeUserIds / UnSubscribeUserIds,
 * MaxMediaFileDuration, SnapshotInterval), each end to end through an API-gateway event, with the
 * room simulator and the COS emulator. Every stored object is decoded.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordHandler } from '../../functions/scf-record';
import type { RecordResult } from '../../shared/recording/record-job';
import { createRoomSimulator, parseRoomScenario, type RoomSimulator } from '../../shared/sources/room-simulator';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';
import { decodeImage, decodeMedia } from '../support/media-tools';

const keys = { SecretId: 'AKIDcontrols', SecretKey: 'controls-secret' };
const bucket = 'controls-1250000000';
let cos: CosEmulator;
let workRoot: string;
let roomId = 9000;

beforeAll(async () => {
  [cos, workRoot] = await Promise.all([startCosEmulator({ secretId: keys.SecretId, secretKey: keys.SecretKey }), mkdtemp(join(tmpdir(), 'scf-controls-'))]);
});
afterAll(() => cos?.close());

const small = { width: 160, height: 90 };

/** Runs one request through the API gateway shape; returns the HTTP status, the result and the room. */
async function viaGateway(scenario: unknown, fields: Record<string, unknown>) {
  let room: RoomSimulator | undefined;
  const handler = createRecordHandler({
    env: { COS_ENDPOINT: cos.endpoint, MEDIA_TMP_DIR: workRoot, LOG_LEVEL: 'warn' },
    createRoom: () => (room = createRoomSimulator(parseRoomScenario(scenario))),
  });
  const body = {
    SdkAppId: 1400000001,
    RoomId: ++roomId,
    UserId: 'recorder_1',
    UserSig: 'sig',
    CosConfig: { ...keys, Region: 'ap-guangzhou', Bucket: bucket, Path: '/controls/' },
    Mode: '02',
    ...fields,
  };
  const started = Date.now();
  const answer = (await handler({ httpMethod: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), isBase64Encoded: false }, { request_id: `controls-${roomId}` })) as {
    statusCode: number;
    body: string;
  };
  return { status: answer.statusCode, result: JSON.parse(answer.body) as RecordResult, room, roomId: body.RoomId, seconds: (Date.now() - started) / 1000 };
}

const keyOf = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));

describe.concurrent('room controls, through the API gateway', () => {
  it('MaxIdleTime: leaves when no recorded anchor has been in the room for that long', async () => {
    const scenario = { anchors: [{ userId: 'alice', joinAt: 0, leaveAt: 2, ...small }, { userId: 'bob', joinAt: 0, ...small }], end: { at: 60, reason: 'dismissed' } };
    // bob stays, but is not recorded: for MaxIdleTime the room is empty once alice leaves.
    const { status, result, seconds } = await viaGateway(scenario, { MaxIdleTime: 5, SubscribeUserIds: ['alice'] });
    expect(status).toBe(200);
    expect(result.StopReason).toBe('idle');
    expect(seconds).toBeGreaterThan(6.5);
    expect(seconds).toBeLessThan(12);
    expect(result.Files.map((file) => [file.UserId, file.Status])).toEqual([['alice', 1]]);
  });

  it('MaxIdleTime: leaves an empty room', async () => {
    const { result, seconds } = await viaGateway({ anchors: [], end: { at: 60, reason: 'dismissed' } }, { MaxIdleTime: 5 });
    expect(result).toMatchObject({ StopReason: 'idle', Files: [], Message: 'nothing was recorded: no anchor was in the room while the recorder was' });
    expect(seconds).toBeLessThan(9);
  });

  it('SubscribeUserIds matching nobody in the room: no file, and the result says why', async () => {
    const scenario = { anchors: ['teacher', 'student1'].map((userId) => ({ userId, ...small })), end: { at: 2, reason: 'dismissed' } };
    const { status, result, room } = await viaGateway(scenario, { SubscribeUserIds: ['techer'] });
    expect(status).toBe(200);
    expect(result).toMatchObject({
      StopReason: 'dismissed',
      Files: [],
      Message: 'nothing was recorded: no anchor in the room (teacher, student1) is in SubscribeUserIds (techer)',
    });
    expect(room!.usage.size).toBe(0);
  });

  it('SubscribeUserIds: records only those, and receives nothing of the others', async () => {
    const scenario = { anchors: ['teacher', 'student1', 'student2'].map((userId) => ({ userId, ...small })), end: { at: 3, reason: 'dismissed' } };
    const { result, room } = await viaGateway(scenario, { SubscribeUserIds: ['teacher'] });
    expect(result.Files.map((file) => [file.UserId, file.Status])).toEqual([['teacher', 1]]);
    // An anchor not subscribed to costs nothing: no frame feed started, no frame delivered.
    expect([...room!.usage.keys()]).toEqual(['teacher']);
    expect(room!.usage.get('teacher')!.frames).toBeGreaterThan(0);
  });

  it('UnSubscribeUserIds: records everyone else', async () => {
    const scenario = { anchors: ['teacher', 'student1', 'student2'].map((userId) => ({ userId, ...small })), end: { at: 3, reason: 'dismissed' } };
    const { result, room } = await viaGateway(scenario, { UnSubscribeUserIds: ['student1'] });
    expect(result.Files.map((file) => file.UserId).sort()).toEqual(['student2', 'teacher']);
    expect(room!.usage.has('student1')).toBe(false);
  });

  it('SnapshotInterval: stores a whole JPEG of each anchor every N seconds while recording', async () => {
    const scenario = { anchors: [{ userId: 'alice', ...small }, { userId: 'bob', joinAt: 1, ...small }], end: { at: 7, reason: 'dismissed' } };
    const { result, roomId: room } = await viaGateway(scenario, { SnapshotInterval: 2 });
    expect(result.Files.every((file) => file.Status === 1)).toBe(true);
    expect(result.Snapshots!.map((s) => s.UserId).sort()).toEqual(['alice', 'bob']);
    for (const snapshots of result.Snapshots!) {
      const stored = cos.listKeys(bucket, `controls/${room}/${snapshots.UserId}/snapshots/`);
      expect(stored.length).toBe(snapshots.Count);
      expect(snapshots.Count).toBeGreaterThanOrEqual(snapshots.UserId === 'alice' ? 3 : 2);
      expect(snapshots).toMatchObject({ FirstKey: stored[0], LastKey: stored.at(-1), Discarded: 0, Failed: 0 });
      for (const key of stored) {
        expect(key).toMatch(new RegExp(`^controls/${room}/${snapshots.UserId}/snapshots/\\d{17}\\.jpg$`));
        expect(await decodeImage(cos.getObject(bucket, key)!, 'jpg'), key).toEqual({ codec: 'mjpeg', ...small, frames: 1 });
      }
    }
  });

  it('refuses bad control fields, naming each, before anything starts', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ MaxIdleTime: 3 }, 'MaxIdleTime'],
      [{ SubscribeUserIds: ['a'], UnSubscribeUserIds: ['b'] }, 'UnSubscribeUserIds'],
      [{ SubscribeUserIds: Array.from({ length: 33 }, (_, i) => `u${i}`) }, 'SubscribeUserIds'],
      [{ MaxMediaFileDuration: 0 }, 'MaxMediaFileDuration'],
      [{ MaxMediaFileDuration: 1441 }, 'MaxMediaFileDuration'],
      [{ SnapshotInterval: 5, Mode: '00' }, 'SnapshotInterval'],
      [{ SnapshotInterval: 0.5 }, 'SnapshotInterval'],
    ];
    for (const [fields, field] of cases) {
      const { status, result, room } = await viaGateway({ anchors: [], end: { at: 1, reason: 'dismissed' } }, fields);
      expect(status, JSON.stringify(fields)).toBe(400);
      expect((result as unknown as { Error: { Fields: Array<{ field: string }> } }).Error.Fields.map((f) => f.field)).toContain(field);
      expect(room).toBeUndefined();
    }
  });
});

describe.concurrent('MaxMediaFileDuration', () => {
  it('splits each recording into consecutive pieces that join without gaps, on keyframes and frames', async () => {
    const scenario = { anchors: [{ userId: 'long', ...small }], end: { at: 70, reason: 'dismissed' } };
    const [video, audio] = await Promise.all([viaGateway(scenario, { MaxMediaFileDuration: 1 }), viaGateway(scenario, { MaxMediaFileDuration: 1, Mode: '00' })]);
    for (const { result } of [video, audio]) {
      expect(result.Files).toHaveLength(2);
      const [first, second] = result.Files as [RecordResult['Files'][number], RecordResult['Files'][number]];
      expect(first.RecordFile).not.toBe(second.RecordFile);
      expect(first.Duration).toBeCloseTo(60, 0);
      // The second starts where the first ends, to the frame.
      expect(Math.abs(second.StartTime - (first.StartTime + first.Duration * 1000))).toBeLessThan(70);
      const decoded = await Promise.all(result.Files.map(async (file) => ({ file, media: await decodeMedia(cos.getObject(bucket, keyOf(file.RecordFile))!, file.RecordFile.endsWith('.mp3') ? 'mp3' : 'mp4') })));
      for (const { file, media } of decoded) {
        expect(file.Status, file.Message).toBe(1);
        expect(Math.abs(media.duration! - file.Duration), `${file.RecordFile}: ${media.duration} vs ${file.Duration}`).toBeLessThan(0.15);
      }
      // Together they cover the anchor's time in the room (it joined at 0, the room ended at 70).
      const total = decoded.reduce((sum, { media }) => sum + media.duration!, 0);
      expect(Math.abs(total - 70), `pieces add up to ${total} s`).toBeLessThan(1);
    }
  });
});
