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
import { sidecarSimRoom } from '../../scripts/lib/scf-local';
import { createRoomSimulator, parseRoomScenario } from '../../shared/sources/room-simulator';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';
import { rssOf } from '../support/liteav';
import { decodeMedia } from '../support/media-tools';
import { runningProcessesMatching } from '../support/process';

const keys = { SecretId: 'AKIDoverload', SecretKey: 'overload-secret' };
const bucket = 'overload-1250000000';
const ROOM_SECONDS = 15;
const ANCHORS = 8;
const RSS_LIMIT_BYTES = 400 * 1024 * 1024;
const SIDECAR_RSS_LIMIT_BYTES = 500 * 1024 * 1024;

let cos: CosEmulator;
let workRoot: string;
beforeAll(async () => {
  [cos, workRoot] = await Promise.all([startCosEmulator({ secretId: keys.SecretId, secretKey: keys.SecretKey }), mkdtemp(join(tmpdir(), 'scf-overload-'))]);
});
afterAll(() => cos?.close());

describe('overload', () => {
  // sim: the simulator in this process. sidecar-sim: the liteav room process plays it and sends every
  // raw picture through its pipe (~93 MB/s per 1080p30 anchor at the SDK's rates; 47 MB/s at these
  // 15 fps): it must shed pictures it cannot hand over, never audio, and stay small too.
  it.each([
    ['sim', RSS_LIMIT_BYTES, 'this process'],
    ['sidecar-sim', SIDECAR_RSS_LIMIT_BYTES, 'this process and the room process together'],
  ] as const)(`records ${ANCHORS} 1080p anchors on 2 cores (room: %s) in under %d bytes (%s), shedding frames visibly, with all their audio`, async (roomKind, rssLimit, _measured) => {
    const scenario = parseRoomScenario({
      anchors: Array.from({ length: ANCHORS }, (_, i) => ({ userId: `anchor${i}`, width: 1920, height: 1080 })),
      end: { at: ROOM_SECONDS, reason: 'dismissed' },
    });
    let roomEndedAt = 0;
    const audioDelivered = new Map<string, number>();
    const handler = createRecordHandler({
      env: { COS_ENDPOINT: cos.endpoint, MEDIA_TMP_DIR: workRoot, LOG_LEVEL: 'error' },
      createRoom: (context) => {
        const room = roomKind === 'sim' ? createRoomSimulator(scenario) : sidecarSimRoom(scenario)(context);
        // When the room ended, not when the handler returned: finishing 8 encoders takes a while.
        // And how much audio the room delivered: all of it, whatever the load.
        const enter = room.enter.bind(room);
        room.enter = (target, listener, subscription) =>
          enter(
            target,
            {
              ...listener,
              audioFrame: (frame) => (audioDelivered.set(frame.userId, (audioDelivered.get(frame.userId) ?? 0) + 1), listener.audioFrame(frame)),
              exited: (reason) => ((roomEndedAt = Date.now()), listener.exited(reason)),
            },
            subscription,
          );
        return room;
      },
    });
    let peakRss = 0;
    let peakRoomRss = 0;
    const sampler = setInterval(() => {
      const roomRss = runningProcessesMatching('room_process.py').reduce((sum, pid) => sum + rssOf(pid), 0);
      peakRoomRss = Math.max(peakRoomRss, roomRss);
      peakRss = Math.max(peakRss, process.memoryUsage().rss + roomRss);
    }, 100);
    const result = (await handler(
      { SdkAppId: 1400000001, RoomId: 77, UserId: 'recorder', UserSig: 'sig', Mode: '02', CosConfig: { ...keys, Region: 'ap-guangzhou', Bucket: bucket, Path: `/${roomKind}/` } },
      { request_id: `overload-${roomKind}` },
    )) as RecordResult;
    clearInterval(sampler);
    const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
    const dropped = result.Files.reduce((sum, file) => sum + file.DroppedFrames, 0);
    process.stderr.write(`overload (${roomKind}): peak RSS ${mb(peakRss)} MB (room process at most ${mb(peakRoomRss)} MB), ${dropped} frames dropped\n`);

    expect(peakRss, `peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MB`).toBeLessThan(rssLimit);
    expect(result.Files).toHaveLength(ANCHORS);
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
      const audio = decoded.streams.find((stream) => stream.type === 'audio');
      expect(audio?.duration, `${file.UserId}'s audio`).toBeGreaterThan(present - 1.5);
      // Audio complete: every 20 ms of the room's audio reached the recorder (pictures were shed, audio never).
      expect(audioDelivered.get(file.UserId), `${file.UserId}'s audio frames`).toBeGreaterThanOrEqual((ROOM_SECONDS * 1000) / 20 - 5);
    }
  });
});
