import { randomFillSync } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { createLogger } from '../../shared/log';
import { i420Size } from '../../shared/media/raw-media';
import { AnchorRecorder } from '../../shared/recording/anchor-recorder';
import { createLocalStore } from '../../shared/storage/local';
import { GrowingObjectUpload } from '../../shared/upload/growing-object';
import { HlsUpload } from '../../shared/upload/hls-upload';
import { decodeMedia, decodePlaylist, firstPictureLuma } from '../support/media-tools';

describe('AnchorRecorder', () => {
  it('rolls over to a new object when one reaches its size limit, each piece a whole file, together the whole time', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rollover-'));
    const store = createLocalStore({ root, bucket: 'b' });
    const logger = createLogger({ requestId: 'rollover', level: 'error' });
    const recorder = new AnchorRecorder({
      userId: 'noise',
      mode: '01',
      ffmpegPath: resolveFfmpegPath(),
      logger,
      maxPieceBytes: 150_000,
      openPiece: (index) => ({ file: new GrowingObjectUpload({ store, key: `piece-${index}.mp4`, contentType: 'video/mp4', logger, giveUpAt: () => Infinity, appendIntervalMs: 200 }) }),
    });
    // Noise does not compress: the pieces fill fast.
    const picture = Buffer.alloc(i420Size(320, 180));
    const feeder = setInterval(() => recorder.videoFrame({ userId: 'noise', data: randomFillSync(Buffer.from(picture)), width: 320, height: 180, timestampMs: 0 }), 1000 / 15);
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    clearInterval(feeder);
    const recording = await recorder.stop();

    expect(recording.pieces.length).toBeGreaterThanOrEqual(2);
    let total = 0;
    for (const [i, piece] of recording.pieces.entries()) {
      expect(piece.upload, `piece ${i}`).toMatchObject({ objectExists: true, lostBytes: 0, spilledBytes: 0 });
      const media = await decodeMedia(await readFile(join(root, 'b', `piece-${i}.mp4`)), 'mp4');
      expect(media.streams[0]).toMatchObject({ type: 'video', codec: 'h264' });
      expect(Math.abs(media.duration! - piece.durationSec), `piece ${i}: ${media.duration} s vs ${piece.durationSec} s`).toBeLessThan(0.15);
      total += piece.durationSec;
      const next = recording.pieces[i + 1];
      if (next) expect(Math.abs(next.startedAt - (piece.startedAt + piece.durationSec * 1000))).toBeLessThan(70);
    }
    // Frames arrive from about 0 s to 6 s.
    expect(total).toBeGreaterThan(5.5);
    expect(total).toBeLessThan(6.3);
  });

  it('splits HLS into a playlist per piece by duration (MaxMediaFileDuration), never by size, each ended and whole', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hls-pieces-'));
    const store = createLocalStore({ root, bucket: 'b' });
    const logger = createLogger({ requestId: 'hls-pieces', level: 'error' });
    const recorder = new AnchorRecorder({
      userId: 'noise',
      mode: '01',
      container: 'mp4',
      ffmpegPath: resolveFfmpegPath(),
      logger,
      maxPieceMs: 5_000,
      // A file would roll over at this size (noise fills it within a second); HLS has no such limit.
      maxPieceBytes: 150_000,
      openPiece: (index) => ({ hls: new HlsUpload({ store, dirKey: `piece-${index}/`, contentType: 'video/mp4', logger, giveUpAt: () => Infinity }) }),
    });
    const picture = Buffer.alloc(i420Size(320, 180));
    const feeder = setInterval(() => recorder.videoFrame({ userId: 'noise', data: randomFillSync(Buffer.from(picture)), width: 320, height: 180, timestampMs: 0 }), 1000 / 15);
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    clearInterval(feeder);
    const recording = await recorder.stop();

    expect(recording.pieces.map((piece) => Math.round(piece.durationSec))).toEqual([5, 5, 1]);
    for (const [i, piece] of recording.pieces.entries()) {
      expect(piece.upload).toBeUndefined();
      expect(piece.hls, `piece ${i}`).toMatchObject({ playlistKey: `piece-${i}/index.m3u8`, ended: true, heldSegments: 0, lostSegments: 0 });
      const playlist = await readFile(join(root, 'b', `piece-${i}`, 'index.m3u8'), 'utf8');
      expect(playlist.trim().endsWith('#EXT-X-ENDLIST')).toBe(true);
      const media = await decodePlaylist(join(root, 'b', `piece-${i}`, 'index.m3u8'));
      expect(media.streams.map((stream) => stream.codec)).toEqual(['h264']);
      expect(Math.abs(media.duration! - piece.durationSec), `piece ${i}: ${media.duration} s decoded, ${piece.durationSec} s recorded`).toBeLessThan(0.15);
    }
  });

  it.each([
    [200, 'opens on the first picture, which stands for the moment before it', 90],
    [1_500, 'is black until the camera starts', 16],
  ])('keeps audio and video aligned when the audio starts %i ms before the first picture: the video %s', async (cameraLateMs, _what, firstLuma) => {
    const root = await mkdtemp(join(tmpdir(), 'av-sync-'));
    const store = createLocalStore({ root, bucket: 'b' });
    const logger = createLogger({ requestId: 'av-sync', level: 'error' });
    const recorder = new AnchorRecorder({
      userId: 'late-camera',
      mode: '02',
      ffmpegPath: resolveFfmpegPath(),
      logger,
      openPiece: (index) => ({ file: new GrowingObjectUpload({ store, key: `av-${index}.mp4`, contentType: 'video/mp4', logger, giveUpAt: () => Infinity }) }),
    });
    const silence = Buffer.alloc(48_000 * 2 * 0.02);
    const audio = setInterval(() => recorder.audioFrame({ userId: 'late-camera', data: silence, sampleRate: 48_000, channels: 1, timestampMs: 0 }), 20);
    await new Promise((resolve) => setTimeout(resolve, cameraLateMs)); // audio only, then the camera starts
    const picture = Buffer.alloc(i420Size(320, 180), 90);
    const video = setInterval(() => recorder.videoFrame({ userId: 'late-camera', data: picture, width: 320, height: 180, timestampMs: 0 }), 1000 / 15);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    clearInterval(audio);
    clearInterval(video);
    await recorder.stop();
    const stored = await readFile(join(root, 'b', 'av-0.mp4'));
    const media = await decodeMedia(stored, 'mp4');
    const [v, a] = ['video', 'audio'].map((type) => media.streams.find((stream) => stream.type === type)!);
    // Both tracks start together and last the recording.
    expect(Math.abs(v!.startTime! - a!.startTime!)).toBeLessThan(0.1);
    expect(Math.abs(v!.duration! - a!.duration!), JSON.stringify(media.streams)).toBeLessThan(0.15);
    expect(v!.duration!).toBeGreaterThan((cameraLateMs + 2_000) / 1000 - 0.3);
    // The picture's luma is 90; black is 16 (x264 rounds a flat picture by a level at most).
    expect(Math.abs((await firstPictureLuma(stored, 'mp4')) - firstLuma)).toBeLessThan(3);
  });
});
