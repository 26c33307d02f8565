/**
 * EventCallback: lifecycle events while a room is recorded (room simulator, COS emulator, a real
 * HTTP receiver): RecordStarted, one AnchorStarted per anchor once its file is in COS, FileClosed
 * per file, RecordStopped last with the final result; each signed, Sequence increasing, EventId
 * unique. A receiver that is down never slows the recording, and what it missed is counted.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordHandler } from '../../functions/scf-record';
import { signCallback, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../shared/callback';
import type { LifecycleEvent } from '../../shared/job/events';
import type { RecordResult } from '../../shared/recording/record-job';
import { createRoomSimulator, parseRoomScenario } from '../../shared/sources/room-simulator';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';

const cosKeys = { SecretId: 'AKIDeventsTEST', SecretKey: 'cos-events-secret-xyz' };
const bucket = 'events-1250000000';
const callbackSecret = 'events-callback-secret';
let cos: CosEmulator;
let workRoot: string;

interface Received {
  headers: IncomingHttpHeaders;
  raw: string;
  event: LifecycleEvent;
  at: number;
}

/** An HTTP receiver; `answer` decides each response's status. */
async function receiver(answer: () => number = () => 200): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    let raw = '';
    request.on('data', (chunk) => (raw += chunk));
    request.on('end', () => {
      const status = answer();
      if (status === 200) received.push({ headers: request.headers, raw, event: JSON.parse(raw), at: Date.now() });
      response.statusCode = status;
      response.end();
    });
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/events`, received, server };
}

beforeAll(async () => {
  [cos, workRoot] = await Promise.all([startCosEmulator({ secretId: cosKeys.SecretId, secretKey: cosKeys.SecretKey }), mkdtemp(join(tmpdir(), 'scf-events-'))]);
});
afterAll(() => cos?.close());

function handler() {
  return createRecordHandler({
    env: { COS_ENDPOINT: cos.endpoint, MEDIA_TMP_DIR: workRoot, LOG_LEVEL: 'error', CALLBACK_SECRET: callbackSecret },
    createRoom: () =>
      createRoomSimulator(
        parseRoomScenario({
          anchors: [
            { userId: 'alice', joinAt: 0, leaveAt: null },
            { userId: 'bob', joinAt: 0.5, leaveAt: null, width: 320, height: 240 },
          ],
          end: { at: 6, reason: 'dismissed' },
        }),
      ),
  });
}

const request = (eventCallback: string, roomId: number) => ({
  SdkAppId: 1400000001,
  RoomId: roomId,
  UserId: 'recorder_1',
  UserSig: 'eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwpklqUWpAFJ*Events',
  CosConfig: { ...cosKeys, Region: 'ap-guangzhou', Bucket: bucket, Path: '/events/' },
  Mode: '02',
  EventCallback: eventCallback,
});

describe('EventCallback', () => {
  it('gets RecordStarted, AnchorStarted per anchor (its file already in COS), FileClosed per file and RecordStopped last, each signed and in sequence', async () => {
    const sink = await receiver();
    try {
      const result = (await handler()(request(sink.url, 7001), { request_id: 'events-1' })) as RecordResult;
      expect(result.Files.map((file) => file.Status)).toEqual([1, 1]);
      expect(result.Events).toEqual({ Sent: sink.received.length, Undelivered: 0 });
      const events = sink.received.map((entry) => entry.event);
      const types = events.map((event) => event.EventType);
      expect(types[0]).toBe('RecordStarted');
      expect(types.at(-1)).toBe('RecordStopped');
      expect(types.filter((type) => type === 'AnchorStarted')).toHaveLength(2);
      expect(types.filter((type) => type === 'FileClosed')).toHaveLength(2);
      expect(types).toHaveLength(6);
      // Sequence 1, 2, 3… in the order they arrived; every EventId different; the request's id on each.
      expect(events.map((event) => event.Sequence)).toEqual(events.map((_, i) => i + 1));
      expect(new Set(events.map((event) => event.EventId)).size).toBe(events.length);
      for (const event of events) expect(event).toMatchObject({ RequestId: 'events-1', SdkAppId: 1400000001, RoomId: 7001, UserId: 'recorder_1' });
      for (const { headers, raw } of sink.received) {
        expect(headers[SIGNATURE_HEADER]).toBe(`sha256=${signCallback(callbackSecret, String(headers[TIMESTAMP_HEADER]), raw)}`);
      }
      for (const event of events.filter((e) => e.EventType === 'AnchorStarted')) {
        const key = event.Key as string;
        expect(key).toMatch(/^events\/7001\/(alice|bob)\/\d{14}-events-1\.mp4$/);
        expect(event.RecordFile).toBe(`https://${bucket}.cos.ap-guangzhou.myqcloud.com/${key}`);
        // Sent once the first bytes were stored: the object existed when the receiver heard of it.
        expect(cos.getObject(bucket, key)!.length).toBeGreaterThan(0);
      }
      const closed = events.filter((e) => e.EventType === 'FileClosed').map((e) => e.File);
      expect(closed).toEqual(expect.arrayContaining(result.Files));
      expect((events.at(-1)!.Result as RecordResult).Files).toEqual(result.Files);
    } finally {
      sink.server.close();
    }
  }, 60_000);

  it('a receiver that is down does not slow the recording: events wait and are retried, and arrive in order once it is back', async () => {
    let up = false;
    const sink = await receiver(() => (up ? 200 : 503));
    try {
      const startedAt = Date.now();
      // Down through the recording; back for its last seconds of delivery.
      const back = setTimeout(() => (up = true), 8_000);
      const result = (await handler()(request(sink.url, 7002), { request_id: 'events-2' })) as RecordResult;
      clearTimeout(back);
      expect(result.Files.map((file) => file.Status)).toEqual([1, 1]);
      // Every event got through once the receiver was back, in order, RecordStopped last.
      const types = sink.received.map((entry) => entry.event.EventType);
      expect(types[0]).toBe('RecordStarted');
      expect(types.at(-1)).toBe('RecordStopped');
      expect(sink.received.map((entry) => entry.event.Sequence)).toEqual(sink.received.map((_, i) => i + 1));
      expect(result.Events).toEqual({ Sent: 6, Undelivered: 0 });
      // The room's 6 s were recorded whole while the receiver refused.
      expect(result.Files.every((file) => file.Duration > 5)).toBe(true);
      expect(sink.received[0]!.at - startedAt).toBeGreaterThanOrEqual(8_000);
    } finally {
      sink.server.close();
    }
  }, 90_000);
});
