/**
 * OutputFormat "hls" (and "hls+mp4"): each anchor's recording as CMAF segments and an EVENT
 * playlist in COS, rewritten as each segment is stored, so it plays while the room is on; ended
 * with EXT-X-ENDLIST, by the recorder or, after a SIGKILL, by the next invocation. Room simulator,
 * COS emulator through the real SDK, ffprobe's HLS demuxer, and hls.js (npm) in Chromium.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordHandler } from '../../functions/scf-record';
import type { LifecycleEvent } from '../../shared/job/events';
import type { RecordedFile, RecordResult } from '../../shared/recording/record-job';
import { createRoomSimulator, parseRoomScenario } from '../../shared/sources/room-simulator';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';
import { describeWithBrowser, startObjectServer, type StaticServer } from '../support/browser';
import { decodeMedia, decodePlaylist } from '../support/media-tools';
import { processesUnderWorkRoot } from '../support/process';
import { okMessage } from '../support/results';

const cosKeys = { SecretId: 'AKIDhlsTEST', SecretKey: 'cos-hls-secret-xyz' };
const bucket = 'hls-1250000000';
let cos: CosEmulator;
let objects: StaticServer;
let workRoot: string;
let room = 9100;

beforeAll(async () => {
  [cos, workRoot] = await Promise.all([startCosEmulator({ secretId: cosKeys.SecretId, secretKey: cosKeys.SecretKey }), mkdtemp(join(tmpdir(), 'scf-hls-'))]);
  // What a player sees: the bucket as it is at each request.
  objects = await startObjectServer((key) => cos.getObject(bucket, key));
});
afterAll(async () => {
  await objects?.close();
  await cos?.close();
});

const env = (extra: Record<string, string> = {}) => ({ COS_ENDPOINT: cos.endpoint, MEDIA_TMP_DIR: workRoot, LOG_LEVEL: 'warn', ...extra });

function request(overrides: Record<string, unknown> = {}) {
  return {
    SdkAppId: 1400000001,
    RoomId: ++room,
    UserId: 'recorder_1',
    UserSig: 'sig',
    CosConfig: { ...cosKeys, Region: 'ap-guangzhou', Bucket: bucket, Path: '/hls/' },
    Mode: '02',
    OutputFormat: 'hls',
    ...overrides,
  };
}

const scenario = (endAt: number, anchors: unknown[] = [{ userId: 'alice', width: 320, height: 180 }]) => ({ anchors, end: { at: endAt, reason: 'dismissed' } });

function handlerFor(roomScenario: unknown, extraEnv: Record<string, string> = {}) {
  return createRecordHandler({ env: env(extraEnv), createRoom: () => createRoomSimulator(parseRoomScenario(roomScenario)) });
}

const keyOf = (file: RecordedFile) => decodeURIComponent(new URL(file.RecordFile).pathname.slice(1));
const folderOf = (playlistKey: string) => playlistKey.slice(0, playlistKey.lastIndexOf('/') + 1);

/** The playlist in COS as a player reads it: its segments in order, and whether it is ended. */
function readPlaylist(playlistKey: string): { segments: Array<{ name: string; duration: number }>; ended: boolean } | undefined {
  const text = cos.getObject(bucket, playlistKey)?.toString('utf8');
  if (text === undefined) return undefined;
  expect(text.startsWith('#EXTM3U\n'), text).toBe(true);
  expect(text).toContain('#EXT-X-PLAYLIST-TYPE:EVENT');
  expect(text).toContain('#EXT-X-MAP:URI="init.mp4"');
  const lines = text.trim().split('\n');
  const segments = lines.flatMap((line, i) => (line.startsWith('#EXTINF:') ? [{ name: lines[i + 1]!, duration: Number(line.slice(8, -1)) }] : []));
  return { segments, ended: lines.at(-1) === '#EXT-X-ENDLIST' };
}

/** Every listed segment is in COS, in sequence from 0, never one listed before it is stored. */
function expectListedStored(playlistKey: string): { segments: Array<{ name: string; duration: number }>; ended: boolean } | undefined {
  const playlist = readPlaylist(playlistKey);
  if (!playlist) return undefined;
  expect(playlist.segments.map((segment) => segment.name)).toEqual(playlist.segments.map((_, i) => `seg-${String(i).padStart(6, '0')}.m4s`));
  for (const segment of playlist.segments) expect(cos.getObject(bucket, `${folderOf(playlistKey)}${segment.name}`), `${segment.name} listed in ${playlistKey}`).toBeDefined();
  return playlist;
}

/**
 * A complete HLS recording: ended, every segment stored and listed, each segment (with the init)
 * decoding on its own to the codecs expected, and ffprobe's HLS demuxer decoding the whole playlist.
 */
async function expectCompleteHls(playlistKey: string, roomSeconds: number, codecs: string[], continuousVideo = true): Promise<void> {
  const playlist = expectListedStored(playlistKey)!;
  expect(playlist.ended, playlistKey).toBe(true);
  const init = cos.getObject(bucket, `${folderOf(playlistKey)}init.mp4`)!;
  expect(init, 'init.mp4').toBeDefined();
  let listedUntil = 0;
  for (const segment of playlist.segments) {
    expect(segment.duration, segment.name).toBeLessThanOrEqual(6);
    const decoded = await decodeMedia(Buffer.concat([init, cos.getObject(bucket, `${folderOf(playlistKey)}${segment.name}`)!]), 'mp4');
    expect(decoded.streams.map((stream) => stream.codec).sort(), segment.name).toEqual(codecs);
    // The playlist says the recording is complete up to the end of its tracks' earliest to end
    // (timestamps as ffprobe decodes them; a track with nothing in this segment has no start).
    listedUntil += segment.duration;
    const ends = decoded.streams.flatMap((stream) => (stream.startTime === undefined || stream.duration === undefined ? [] : [stream.duration]));
    expect(Math.abs(Math.min(...ends) - listedUntil), `${segment.name}: listed up to ${listedUntil} s, decoded ${JSON.stringify(decoded.streams)}`).toBeLessThan(0.1);
  }
  const decoded = await decodePlaylist(objects.url(playlistKey));
  expect(decoded.streams.map((stream) => stream.codec).sort()).toEqual(codecs);
  expect(Math.abs(decoded.duration! - roomSeconds), `${playlistKey}: ${decoded.duration} s decoded, room ${roomSeconds} s`).toBeLessThanOrEqual(1);
  const video = decoded.streams.find((stream) => stream.type === 'video');
  // 15 fps, each frame once: a segment listed twice or skipped (about 60 frames) would show here.
  // Under load a few pictures are shed (the one before lasts longer): 10 of 420 seen beside the
  // overload test.
  if (video && continuousVideo) expect(Math.abs(video.frames - decoded.duration! * 15), `${video.frames} video frames`).toBeLessThanOrEqual(30);
}

describe('HLS recordings in COS', () => {
  it('Mode 00: AAC segments and a playlist; the result names the playlist, its format and its segments', async () => {
    const result = (await handlerFor(scenario(10, [{ userId: 'voice', video: false }]))(request({ Mode: '00' }), { request_id: 'hls-audio' })) as RecordResult;
    expect(result.Files.map((file) => [file.UserId, file.Format, file.Status, file.Message]), JSON.stringify(result)).toEqual([['voice', 'hls', 1, okMessage]]);
    const [file] = result.Files;
    expect(keyOf(file!)).toMatch(/^hls\/\d+\/voice\/\d{14}-hls-audio\/index\.m3u8$/);
    expect(file!.Segments).toBe(readPlaylist(keyOf(file!))!.segments.length);
    await expectCompleteHls(keyOf(file!), 10, ['aac']);
  });

  it('stopped by the deadline: the playlist is ended in COS and lists every segment, whole, before the function returns', async () => {
    const result = (await handlerFor(scenario(60), { FINALIZE_MARGIN_MS: '4000' })(request(), { request_id: 'hls-deadline', time_limit_in_ms: 12_000 })) as RecordResult;
    expect(result.StopReason, JSON.stringify(result)).toBe('deadline');
    expect(result.Files.map((file) => [file.Format, file.Status, file.Message]), JSON.stringify(result)).toEqual([['hls', 1, okMessage]]);
    const [file] = result.Files;
    const playlist = expectListedStored(keyOf(file!))!;
    expect(playlist.ended).toBe(true);
    expect(file!.Segments).toBe(playlist.segments.length);
    expect(file!.Duration).toBeGreaterThan(4);
    await expectCompleteHls(keyOf(file!), file!.Duration, ['aac', 'h264']);
  });

  it('hls+mp4: one encoding, two outputs: the MP4 is byte for byte the init and the segments; an anchor away is in both', async () => {
    // Away from 3 s to 8 s: fragments of silence and no picture, timed and segmented all the same.
    const away = [
      { userId: 'alice', width: 320, height: 180, leaveAt: 3 },
      { userId: 'alice', width: 320, height: 180, joinAt: 8 },
    ];
    const result = (await handlerFor(scenario(12, away))(request({ OutputFormat: 'hls+mp4' }), { request_id: 'hls-both' })) as RecordResult;
    expect(result.Files.map((file) => [file.Format, file.Status]), JSON.stringify(result)).toEqual([
      ['mp4', 1],
      ['hls', 1],
    ]);
    const [mp4, hls] = result.Files as [RecordedFile, RecordedFile];
    await expectCompleteHls(keyOf(hls), 12, ['aac', 'h264'], false);
    const folder = folderOf(keyOf(hls));
    const segments = readPlaylist(keyOf(hls))!.segments.map((segment) => cos.getObject(bucket, `${folder}${segment.name}`)!);
    const mp4Bytes = cos.getObject(bucket, keyOf(mp4))!;
    expect(mp4Bytes.equals(Buffer.concat([cos.getObject(bucket, `${folder}init.mp4`)!, ...segments]))).toBe(true);
    expect(mp4.Size).toBe(mp4Bytes.length);
    expect(Math.abs((await decodeMedia(mp4Bytes, 'mp4')).duration! - 12)).toBeLessThanOrEqual(1);
  });

  it('a COS outage holds the segments; the playlist catches up in order and never lists one not stored', async () => {
    const checks: number[] = [];
    let playlistKey: string | undefined;
    // Watches the bucket the whole time, as a player would.
    const watcher = setInterval(() => {
      playlistKey ??= cos.listKeys(bucket, `hls/${room}/`).find((key) => key.endsWith('/index.m3u8'));
      const playlist = playlistKey ? expectListedStored(playlistKey) : undefined;
      if (playlist) checks.push(playlist.segments.length);
    }, 250);
    const outageStarts = setTimeout(() => cos.setOutage(true), 5_000);
    const outageEnds = setTimeout(() => cos.setOutage(false), 13_000);
    try {
      const result = (await handlerFor(scenario(16))(request(), { request_id: 'hls-outage', time_limit_in_ms: 120_000 })) as RecordResult;
      expect(result.Files.map((file) => [file.Format, file.Status, file.Message]), JSON.stringify(result)).toEqual([['hls', 1, okMessage]]);
      expect(cos.requests.some((entry) => entry.fault === 'outage')).toBe(true);
      await expectCompleteHls(keyOf(result.Files[0]!), 16, ['aac', 'h264']);
      // Seen growing before the outage, never shrinking, complete after.
      expect(checks.some((count) => count > 0 && count < 3), JSON.stringify(checks)).toBe(true);
      expect(checks.every((count, i) => i === 0 || count >= checks[i - 1]!), JSON.stringify(checks)).toBe(true);
      expect(readPlaylist(keyOf(result.Files[0]!))!.segments.length).toBe(result.Files[0]!.Segments);
    } finally {
      clearInterval(watcher);
      clearTimeout(outageStarts);
      clearTimeout(outageEnds);
      cos.setOutage(false);
    }
  });

  it('after a SIGKILL 30 s in, the playlist in COS plays 22 s or more, and the next invocation ends it', async () => {
    const tmp = await mkdtemp(join(workRoot, 'kill-'));
    const hostRequest = request();
    const host = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/record-host.ts', JSON.stringify(hostRequest), JSON.stringify(scenario(90)), 'sim'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, ...env({ MEDIA_TMP_DIR: tmp }) },
    });
    await new Promise((resolve) => setTimeout(resolve, 30_000));
    host.kill('SIGKILL');
    await once(host, 'exit');
    await expect.poll(() => processesUnderWorkRoot(tmp), { timeout: 10_000, interval: 200 }).toEqual([]);

    const playlistKey = cos.listKeys(bucket, `hls/${hostRequest.RoomId}/`).find((key) => key.endsWith('/index.m3u8'))!;
    expect(playlistKey).toBeDefined();
    const killed = expectListedStored(playlistKey)!;
    expect(killed.ended).toBe(false);
    // ffprobe's HLS demuxer waits for more of a playlist without ENDLIST (a live one): what it
    // lists is decoded as a player would append it, the init and then each listed segment.
    const folder = folderOf(playlistKey);
    const listed = Buffer.concat([cos.getObject(bucket, `${folder}init.mp4`)!, ...killed.segments.map((segment) => cos.getObject(bucket, `${folder}${segment.name}`)!)]);
    const playable = await decodeMedia(listed, 'mp4');
    console.log(`HLS after SIGKILL at 30 s: ${killed.segments.length} segments listed, ffprobe decodes ${playable.duration} s`);
    expect(playable.duration!).toBeGreaterThanOrEqual(22);

    // The next invocation on this instance finds the recording and ends its playlist.
    const next = (await handlerFor(scenario(1, []), { MEDIA_TMP_DIR: tmp })(request(), { request_id: 'hls-after-kill' })) as RecordResult;
    expect(next.Files).toEqual([]);
    const ended = expectListedStored(playlistKey)!;
    expect(ended.ended).toBe(true);
    expect(ended.segments.length).toBeGreaterThanOrEqual(killed.segments.length);
    await expectCompleteHls(playlistKey, ended.segments.reduce((sum, segment) => sum + segment.duration, 0), ['aac', 'h264']);
  });
});

describeWithBrowser('HLS recordings in Chromium (hls.js)', (browser) => {
  it('plays and seeks a playlist while the room is recorded and after it ended; lifecycle events name the playlist', async () => {
    const events: LifecycleEvent[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk)).on('end', () => {
        events.push(JSON.parse(body));
        res.end();
      });
    }).listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    try {
      const anchors = [
        { userId: 'alice', width: 320, height: 180 },
        { userId: 'bob', joinAt: 1, width: 320, height: 180 },
      ];
      const recording = handlerFor(scenario(16, anchors))(request({ EventCallback: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/events` }), {
        request_id: 'hls-play',
      }) as Promise<RecordResult>;
      // While recording: once alice's playlist lists two segments (about 8 s in).
      const started = () => events.find((event) => event.EventType === 'AnchorStarted' && event.AnchorId === 'alice') as (LifecycleEvent & { Key: string }) | undefined;
      await expect.poll(() => started() && (readPlaylist(started()!.Key)?.segments.length ?? 0), { timeout: 20_000, interval: 200 }).toBeGreaterThanOrEqual(2);
      const live = await browser().checkHls(objects.url(started()!.Key), { seekTo: 2 });
      expect(live, JSON.stringify(live)).toMatchObject({ error: null, hlsErrors: [], timedOut: [], playlist: { live: true } });
      expect(live.play?.advanced).toBe(true);
      expect(live.seek).toMatchObject({ seeked: true, frame: { presented: true, nonBlank: true } });

      const result = await recording;
      expect(result.Files.map((file) => [file.UserId, file.Format, file.Status]), JSON.stringify(result)).toEqual([
        ['alice', 'hls', 1],
        ['bob', 'hls', 1],
      ]);
      // AnchorStarted names each anchor's playlist, stored by then.
      const anchorStarted = events.filter((event) => event.EventType === 'AnchorStarted') as Array<LifecycleEvent & { AnchorId: string; Key: string }>;
      expect(anchorStarted.map((event) => [event.AnchorId, event.Key]).sort()).toEqual(result.Files.map((file) => [file.UserId, keyOf(file)]).sort());
      for (const file of result.Files) {
        await expectCompleteHls(keyOf(file), file.UserId === 'alice' ? 16 : 15, ['aac', 'h264']);
        const after = await browser().checkHls(objects.url(keyOf(file)), { seekTo: 10 });
        expect(after, JSON.stringify(after)).toMatchObject({ error: null, hlsErrors: [], timedOut: [], playlist: { live: false } });
        expect(Math.abs(after.duration - file.Duration), `${after.duration} s in Chromium, ${file.Duration} s recorded`).toBeLessThan(1);
        expect(after.seek).toMatchObject({ seeked: true, frame: { presented: true, nonBlank: true } });
        expect(after.seek!.currentTime).toBeCloseTo(10, 0);
      }
    } finally {
      receiver.close();
    }
  });

  it('plays and seeks an audio-only (AAC) playlist', async () => {
    const result = (await handlerFor(scenario(9, [{ userId: 'voice', video: false }]))(request({ Mode: '00' }), { request_id: 'hls-audio-play' })) as RecordResult;
    expect(result.Files.map((file) => [file.Format, file.Status]), JSON.stringify(result)).toEqual([['hls', 1]]);
    const played = await browser().checkHls(objects.url(keyOf(result.Files[0]!)), { seekTo: 6 });
    expect(played, JSON.stringify(played)).toMatchObject({ error: null, hlsErrors: [], playlist: { live: false } });
    expect(Math.abs(played.duration - 9)).toBeLessThan(1);
    expect(played.play?.advanced).toBe(true);
    expect(played.seek).toMatchObject({ seeked: true, play: { advanced: true } });
  });
});
