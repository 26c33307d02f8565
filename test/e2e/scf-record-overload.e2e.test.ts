/**
 * More anchors than the machine can encode: eight 1080p anchors on 2 cores. Frames are shed at
 * the recorder's input instead of queued, so the process stays small, every file still covers
 * the room's time, and each file says how many frames it dropped.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordHandler } from '../../functions/scf-record';
import type { RecordResult } from '../../shared/recording/record-job';
import { createRoomSimulator, parseRoomScenario } from '../../shared/sources/room-simulator';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';
import { decodeMedia } from '../support/media-tools';

const keys = { SecretId: 'AKIDoverload', SecretKey: 'overload-secret' };
const bucket = 'overload-1250000000';
const ROOM_SECONDS = 15;
const ANCHORS = 8;
const RSS_LIMIT_BYTES = 400 * 1024 * 1024;

let cos: CosEmulator;
let workRoot: string;
beforeAll(async () => {
  [cos, workRoot] = await Promise.all([startCosEmulator({ secretId: keys.SecretId, secretKey: keys.SecretKey }), mkdtemp(join(tmpdir(), 'scf-overload-'))]);
});
afterAll(() => cos?.close());

describe('overload', () => {
  it(`records ${ANCHORS} 1080p anchors on 2 cores in under 400 MB, shedding frames visibly`, async () => {
    const scenario = {
      anchors: Array.from({ length: ANCHORS }, (_, i) => ({ userId: `anchor${i}`, width: 1920, height: 1080, audio: false })),
      end: { at: ROOM_SECONDS, reason: 'dismissed' },
    };
    const handler = createRecordHandler({
      env: { COS_ENDPOINT: cos.endpoint, MEDIA_TMP_DIR: workRoot, LOG_LEVEL: 'error' },
      createRoom: () => {
        const room = createRoomSimulator(parseRoomScenario(scenario));
        // When the room ended, not when the handler returned: finishing 8 encoders takes a while.
        const enter = room.enter.bind(room);
        room.enter = (target, listener, subscription) =>
          enter(target, { ...listener, exited: (reason) => ((roomEndedAt = Date.now()), listener.exited(reason)) }, subscription);
        return room;
      },
    });
    let roomEndedAt = 0;
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
    const result = (await handler(
      { SdkAppId: 1400000001, RoomId: 77, UserId: 'recorder', UserSig: 'sig', Mode: '01', CosConfig: { ...keys, Region: 'ap-guangzhou', Bucket: bucket, Path: '/' } },
      { request_id: 'overload' },
    )) as RecordResult;
    clearInterval(sampler);

    // This process holds the room simulator (8 raw 1080p feeds) as well as the recorder.
    expect(peakRss, `peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MB`).toBeLessThan(RSS_LIMIT_BYTES);
    expect(result.Files).toHaveLength(ANCHORS);
    const dropped = result.Files.reduce((sum, file) => sum + file.DroppedFrames, 0);
    expect(dropped, 'the encoders could not keep up, and the result says so').toBeGreaterThan(0);
    for (const file of result.Files) {
      expect(file.Status, file.Message).toBe(1);
      const key = decodeURIComponent(new URL(file.RecordFile).pathname.slice(1));
      const decoded = await decodeMedia(cos.getObject(bucket, key)!, 'mp4');
      // From its first picture to the room's end, the anchor's time is covered: a picture not
      // encoded makes the one before last longer, never the file shorter.
      const present = (roomEndedAt - file.StartTime) / 1000;
      expect(decoded.duration!, `${file.UserId}: ${JSON.stringify(file)}`).toBeGreaterThan(present - 1.5);
      expect(decoded.duration!).toBeGreaterThan(ROOM_SECONDS / 2);
    }
  });
});
