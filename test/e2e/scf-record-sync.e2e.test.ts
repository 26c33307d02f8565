/**
 * A/V sync in the stored recording, measured: the simulated anchor flashes white and beeps at the
 * same instants every 10 s (`syncPattern`), and ffprobe finds both marks in the MP4 the recorder
 * stored. The offset at every mark stays within 40 ms, in the simulator and through the liteav
 * room process (`sidecar-sim:`). Over seconds, not hours: the two-hour run is issue 20's bench.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordHandler } from '../../functions/scf-record';
import type { RecordResult } from '../../shared/recording/record-job';
import { createRoomSimulator, parseRoomScenario, SYNC_MARK_SECONDS } from '../../shared/sources/room-simulator';
import { sidecarSimRoom } from '../../scripts/lib/scf-local';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';
import { syncMarks } from '../support/media-tools';

const cosKeys = { SecretId: 'AKIDsyncTEST', SecretKey: 'cos-sync-secret-xyz' };
const bucket = 'sync-1250000000';
const ROOM_SECONDS = 32;
/** The bound on the offset at every mark. */
const MAX_OFFSET_S = 0.04;
let cos: CosEmulator;
let workRoot: string;

beforeAll(async () => {
  [cos, workRoot] = await Promise.all([startCosEmulator({ secretId: cosKeys.SecretId, secretKey: cosKeys.SecretKey }), mkdtemp(join(tmpdir(), 'scf-sync-'))]);
});
afterAll(() => cos?.close());

const scenario = parseRoomScenario({
  anchors: [{ userId: 'metronome', joinAt: 0, leaveAt: null, width: 320, height: 240, syncPattern: true }],
  end: { at: ROOM_SECONDS, reason: 'dismissed' },
});

async function recordAndMeasure(room: 'sim' | 'sidecar-sim', roomId: number) {
  const handler = createRecordHandler({
    env: { COS_ENDPOINT: cos.endpoint, MEDIA_TMP_DIR: workRoot, LOG_LEVEL: 'error' },
    createRoom: room === 'sim' ? () => createRoomSimulator(scenario) : sidecarSimRoom(scenario),
  });
  const result = (await handler(
    {
      SdkAppId: 1400000001,
      RoomId: roomId,
      UserId: 'recorder_1',
      UserSig: 'eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwpklqUWpAFJ*Sync',
      CosConfig: { ...cosKeys, Region: 'ap-guangzhou', Bucket: bucket, Path: '/sync/' },
      Mode: '02',
    },
    { request_id: `sync-${room}` },
  )) as RecordResult;
  expect(result.Files.map((file) => file.Status), JSON.stringify(result)).toEqual([1]);
  const key = decodeURIComponent(new URL(result.Files[0]!.RecordFile).pathname.slice(1));
  return { ...(await syncMarks(cos.getObject(bucket, key)!, 'mp4')), lateAudioMs: result.Files[0]!.LateAudioMs };
}

describe('A/V sync of a recorded anchor', () => {
  it.concurrent.for(['sim', 'sidecar-sim'] as const)('%s: a flash and its beep land together at every mark', async (room, { expect }) => {
    const { flashes, beeps, lateAudioMs } = await recordAndMeasure(room, room === 'sim' ? 8001 : 8002);
    // The marks after the first (the file may open inside it): at 10, 20 and 30 s of room time.
    const marks = flashes.filter((time) => time > 1);
    expect(marks.length, JSON.stringify({ flashes, beeps })).toBe(Math.floor((ROOM_SECONDS - 1) / SYNC_MARK_SECONDS));
    const offsets = marks.map((flash) => {
      const beep = beeps.reduce((nearest, time) => (Math.abs(time - flash) < Math.abs(nearest - flash) ? time : nearest), Infinity);
      return Number((beep - flash).toFixed(3));
    });
    console.log(`${room}: audio minus video at each mark (s): ${offsets.join(', ')}; late audio cut: ${lateAudioMs} ms`);
    for (const offset of offsets) expect(Math.abs(offset), JSON.stringify({ flashes, beeps, offsets })).toBeLessThanOrEqual(MAX_OFFSET_S);
    // Marks 10 s apart in the file as in the room: no drift between them.
    for (let i = 1; i < marks.length; i++) expect(Math.abs(marks[i]! - marks[i - 1]! - SYNC_MARK_SECONDS)).toBeLessThan(0.1);
  });
});
