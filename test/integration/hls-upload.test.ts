/**
 * HlsUpload on its own, over a local bucket whose puts can be made to fail: segments are listed
 * only once stored and in order, an outage holds them on disk, and a recovery pass over what an
 * invocation left (its folder, as a SIGKILL leaves it) stores the held ones and ends the playlist.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StorageError } from '../../shared/errors';
import { recoverLeftovers } from '../../shared/job/recovery';
import { createLogger } from '../../shared/log';
import { mediaPlaylist } from '../../shared/media/hls-playlist';
import { createLocalStore } from '../../shared/storage/local';
import type { ObjectStore } from '../../shared/storage/types';
import { HlsUpload } from '../../shared/upload/hls-upload';
import { spillBudget } from '../../shared/upload/spill-queue';

const logger = createLogger({ requestId: 'hls-upload', level: 'error' });
const target = { bucket: 'b', region: 'local' };

/** A local bucket whose puts fail (503, retryable) while `down` is set. */
function flakyStore(root: string): { store: ObjectStore; setDown: (down: boolean) => void } {
  const local = createLocalStore({ root, bucket: 'b' });
  let down = false;
  const outage = (key: string) => new StorageError({ cloud: 'local', bucket: 'b', key, operation: 'put', status: 503 }, `put ${key}: 503`, { retryable: true });
  return {
    setDown: (value) => (down = value),
    store: {
      ...local,
      putBuffer: (key, body, options) => (down ? Promise.reject(outage(key)) : local.putBuffer(key, body, options)),
      putFile: (key, path, options) => (down ? Promise.reject(outage(key)) : local.putFile(key, path, options)),
    },
  };
}

const segment = (sequence: number) => Buffer.from(`segment ${sequence} `.repeat(100));

describe('HlsUpload', () => {
  it('holds segments on disk through an outage, and recovery stores them and ends the playlist after a kill', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hls-upload-'));
    const { store, setDown } = flakyStore(join(root, 'bucket'));
    const spillDir = join(root, 'work', 'a0-p0-hls');
    let giveUpAt = Infinity;
    const upload = new HlsUpload({ store, dirKey: 'rec/', contentType: 'video/mp4', logger, giveUpAt: () => giveUpAt, spill: { dir: spillDir, budget: spillBudget(1e9), target } });
    upload.writeInit(Buffer.from('init'));
    upload.writeSegment(segment(0), 4);
    upload.writeSegment(segment(1), 4);
    const playlistPath = join(root, 'bucket', 'b', 'rec', 'index.m3u8');
    await expect.poll(async () => (await readFile(playlistPath, 'utf8').catch(() => '')).includes('seg-000001.m4s'), { timeout: 5_000 }).toBe(true);
    expect(await readFile(playlistPath, 'utf8')).toBe(mediaPlaylist([{ sequence: 0, durationSec: 4 }, { sequence: 1, durationSec: 4 }], false));

    // Storage goes down: the next segments wait on disk, never listed.
    setDown(true);
    for (const sequence of [2, 3, 4]) upload.writeSegment(segment(sequence), sequence === 4 ? 2.5 : 4);
    await expect.poll(async () => (await readdir(spillDir)).filter((name) => name.endsWith('.m4s')).sort(), { timeout: 10_000 }).toEqual(['2-4000000.m4s', '3-4000000.m4s', '4-2500000.m4s']);
    expect(await readFile(playlistPath, 'utf8')).not.toContain('seg-000002.m4s');

    // The invocation runs out of time with storage still down: the playlist stays as it was, the folder stays.
    giveUpAt = Date.now();
    const result = await upload.end();
    expect(result).toMatchObject({ segments: 2, heldSegments: 3, lostSegments: 0, ended: false });
    expect(existsSync(join(spillDir, 'hls.json'))).toBe(true);

    // The next invocation, storage back: the held segments go in after the stored ones, then ENDLIST.
    setDown(false);
    const done = await recoverLeftovers({ dir: join(root, 'work'), ageMs: 0 }, () => store, logger, Date.now() + 10_000);
    expect(done).toBe(true);
    expect(await readFile(playlistPath, 'utf8')).toBe(
      mediaPlaylist(
        [0, 1, 2, 3, 4].map((sequence) => ({ sequence, durationSec: sequence === 4 ? 2.5 : 4 })),
        true,
      ),
    );
    for (const sequence of [0, 1, 2, 3, 4]) expect(await readFile(join(root, 'bucket', 'b', 'rec', `seg-00000${sequence}.m4s`))).toEqual(segment(sequence));
    expect(existsSync(spillDir)).toBe(false);
  });

  it('lists nothing past a segment it could not keep, and says how many were lost', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hls-lost-'));
    const { store, setDown } = flakyStore(join(root, 'bucket'));
    // No disk to hold anything: an outage past the give-up time loses what waits in memory.
    let giveUpAt = Infinity;
    const upload = new HlsUpload({ store, dirKey: 'rec/', contentType: 'audio/mp4', logger, giveUpAt: () => giveUpAt, spill: { dir: join(root, 'work'), budget: spillBudget(0), target } });
    upload.writeInit(Buffer.from('init'));
    upload.writeSegment(segment(0), 4);
    await expect.poll(() => existsSync(join(root, 'bucket', 'b', 'rec', 'index.m3u8')), { timeout: 5_000 }).toBe(true);
    setDown(true);
    giveUpAt = Date.now() + 300;
    upload.writeSegment(segment(1), 4);
    upload.writeSegment(segment(2), 4);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    setDown(false);
    upload.writeSegment(segment(3), 4);
    const result = await upload.end();
    expect(result).toMatchObject({ segments: 1, heldSegments: 0, lostSegments: 3, ended: false });
    expect(await readFile(join(root, 'bucket', 'b', 'rec', 'index.m3u8'), 'utf8')).toBe(mediaPlaylist([{ sequence: 0, durationSec: 4 }], false));
  });
});
