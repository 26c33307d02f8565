/**
 * GrowingObjectUpload against the COS emulator (real SDK, signatures checked): bytes land in
 * order and exactly once through an outage, memory is bounded by spilling to disk, the disk is
 * bounded by refusing more, and what could not be stored is left with a description that the
 * next invocation's recovery appends where it belongs.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/log';
import { recoverLeftovers } from '../../shared/job/recovery';
import { createCosStore } from '../../shared/storage/cos';
import type { ObjectStore } from '../../shared/storage/types';
import { GrowingObjectUpload, spillBudget } from '../../shared/upload/growing-object';
import { startCosEmulator, type CosEmulator } from '../emulators/cos-emulator';

const credentials = { secretId: 'AKIDgrow', secretKey: 'grow-secret' };
const bucket = 'grow-1250000000';
const logger = createLogger({ requestId: 'growing', level: 'error' });
let cos: CosEmulator;
let store: ObjectStore;
let root: string;
let n = 0;

beforeAll(async () => {
  cos = await startCosEmulator(credentials);
  store = createCosStore({ bucket, region: 'ap-guangzhou', endpoint: cos.endpoint, credentials });
  root = await mkdtemp(join(tmpdir(), 'growing-'));
});
afterAll(() => cos?.close());

/** Distinct, numbered pieces, so order and duplicates show in the stored bytes. */
const piece = (i: number, bytes = 50_000) => Buffer.alloc(bytes, i % 251).fill(String(i).padStart(8, '0'), 0, 8);

function upload(options: Partial<ConstructorParameters<typeof GrowingObjectUpload>[0]> = {}) {
  const key = `g/${++n}.mp4`;
  return new GrowingObjectUpload({ store, key, contentType: 'video/mp4', logger, giveUpAt: () => Date.now() + 60_000, appendIntervalMs: 100, ...options });
}

describe('GrowingObjectUpload', () => {
  it('stores every piece once, in order, through an outage, spilling to disk meanwhile', async () => {
    const spillPath = join(root, `outage-${n}.spill`);
    const up = upload({ memoryLimitBytes: 200_000, spill: { path: spillPath, budget: spillBudget(50_000_000), target: { bucket, region: 'ap-guangzhou' } } });
    const written: Buffer[] = [];
    let spilledDuringOutage = false;
    for (let i = 0; i < 60; i++) {
      if (i === 10) cos.setOutage(true);
      if (i === 40) {
        spilledDuringOutage = existsSync(spillPath) && existsSync(`${spillPath}.json`);
        cos.setOutage(false);
      }
      written.push(piece(i));
      expect(up.write(written.at(-1)!)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const result = await up.end();
    expect(spilledDuringOutage).toBe(true);
    expect(result).toMatchObject({ mode: 'append', storedBytes: 60 * 50_000, lostBytes: 0, spilledBytes: 0, objectExists: true });
    expect(cos.getObject(bucket, up.key)!.equals(Buffer.concat(written))).toBe(true);
    expect(existsSync(spillPath)).toBe(false); // removed once stored
  });

  it('says "hold on" once memory and disk are full, instead of taking more', async () => {
    cos.setOutage(true);
    try {
      const giveUpAt = Date.now() + 1_000;
      const up = upload({ memoryLimitBytes: 100_000, spill: { path: join(root, 'full.spill'), budget: spillBudget(300_000), target: { bucket, region: 'ap-guangzhou' } }, giveUpAt: () => giveUpAt });
      let accepted = 0;
      while (up.write(piece(accepted))) accepted++;
      // 100 kB of memory, 300 kB of disk, 50 kB pieces: it refuses well before a megabyte.
      expect(accepted * 50_000).toBeLessThanOrEqual(450_000);
      let roomMade = false;
      const room = up.room().then(() => (roomMade = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(roomMade).toBe(false);
      // Once it gives up, a waiting writer is let go (what comes is lost, and counted), and it ends.
      await room;
      const result = await up.end();
      expect(result.error).toBeDefined();
      expect(result.lostBytes).toBeGreaterThan(0);
      expect(result.spilledBytes + result.lostBytes).toBe(accepted * 50_000 + 50_000);
    } finally {
      cos.setOutage(false);
    }
  });

  it('leaves what it could not store on disk, described, for the next invocation to append where it belongs', async () => {
    const dir = join(root, 'record-dead');
    await mkdir(dir);
    const spillPath = join(dir, 'a0-p0.spill');
    const written: Buffer[] = [];
    let giveUpAt = Infinity;
    const first = upload({ memoryLimitBytes: 60_000, spill: { path: spillPath, budget: spillBudget(10_000_000), target: { bucket, region: 'ap-guangzhou' } }, giveUpAt: () => giveUpAt });
    for (let i = 0; i < 4; i++) first.write((written[written.length] = piece(i)));
    await new Promise((resolve) => setTimeout(resolve, 500)); // some of it is stored
    cos.setOutage(true);
    for (let i = 4; i < 12; i++) first.write((written[written.length] = piece(i)));
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // spilled by now
    // Storage is back a moment: part of the spill file lands; then down until it gives up.
    const appendsBefore = cos.requests.filter((entry) => entry.key === first.key && entry.status === 200).length;
    cos.setOutage(false);
    await expect.poll(() => cos.requests.filter((entry) => entry.key === first.key && entry.status === 200).length, { timeout: 10_000, interval: 5 }).toBeGreaterThan(appendsBefore);
    cos.setOutage(true);
    for (let i = 12; i < 14; i++) first.write((written[written.length] = piece(i)));
    giveUpAt = Date.now() + 1_000;
    const gaveUp = await first.end();
    cos.setOutage(false);
    expect(gaveUp.error).toBeDefined();
    expect(gaveUp.storedBytes + gaveUp.spilledBytes).toBe(14 * 50_000);
    expect(gaveUp.lostBytes).toBe(0);
    expect(JSON.parse(await readFile(`${spillPath}.json`, 'utf8'))).toMatchObject({ key: first.key, position: gaveUp.storedBytes });

    // The next invocation finds the dead dir and appends the spill after what the object holds.
    const done = await recoverLeftovers({ dir, ageMs: 0, owner: { pid: 1, pidStart: null, requestId: 'dead', kind: 'record', createdAt: '', recovery: { bucket, region: 'ap-guangzhou' } } }, () => store, logger, Date.now() + 30_000);
    expect(done).toBe(true);
    expect(existsSync(spillPath)).toBe(false);
    expect(cos.getObject(bucket, first.key)!.equals(Buffer.concat(written))).toBe(true);
  });

  it('ends, saying what was lost, when a multipart upload (appends refused) fails for good', async () => {
    cos.setFaults({ refuseAppends: true });
    cos.setOutage(true);
    try {
      const giveUpAt = Date.now() + 1_000;
      const up = upload({ memoryLimitBytes: 100_000, giveUpAt: () => giveUpAt });
      // The first append is refused only once storage answers; until then it waits like any append.
      cos.setOutage(false);
      up.write(piece(0));
      await new Promise((resolve) => setTimeout(resolve, 300)); // refused: now a multipart upload
      cos.setOutage(true);
      let written = 1;
      for (; written < 40; written++) if (!up.write(piece(written))) await up.room();
      const result = await up.end();
      expect(result.mode).toBe('multipart');
      expect(result.error).toBeDefined();
      expect(result.objectExists).toBe(false);
      expect(result.lostBytes).toBe(written * 50_000);
    } finally {
      cos.setOutage(false);
      cos.setFaults({ refuseAppends: false });
    }
  });

  it('recovery skips what did get stored before the kill, and refuses a spill that would leave a hole', async () => {
    const dir = join(root, 'record-partial');
    await mkdir(dir);
    const key = `g/${++n}.mp4`;
    const all = Buffer.concat([piece(1), piece(2), piece(3)]);
    // The object holds the first piece and half of the second (an append applied, its answer lost).
    await store.append(key, all.subarray(0, 75_000), 0);
    await writeFile(join(dir, 'x.spill'), all.subarray(50_000));
    await writeFile(join(dir, 'x.spill.json'), JSON.stringify({ bucket, region: 'ap-guangzhou', key, contentType: 'video/mp4', position: 50_000, fileOffset: 0 }));
    // A second spill belongs after bytes the object never got: appending it would corrupt the file.
    await writeFile(join(dir, 'y.spill'), Buffer.alloc(10));
    await writeFile(join(dir, 'y.spill.json'), JSON.stringify({ bucket, region: 'ap-guangzhou', key: `${key}.other`, contentType: 'video/mp4', position: 999, fileOffset: 0 }));
    const done = await recoverLeftovers({ dir, ageMs: 0, owner: { pid: 1, pidStart: null, requestId: 'dead', kind: 'record', createdAt: '' } }, () => store, logger, Date.now() + 30_000);
    expect(done).toBe(false);
    expect(cos.getObject(bucket, key)!.equals(all)).toBe(true);
    expect(cos.getObject(bucket, `${key}.other`)).toBeUndefined();
  });
});
