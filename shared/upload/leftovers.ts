import { appendFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What an invocation leaves on the instance for the next one to store, and how it is described.
 * Both sides of the format live here: the uploads write it, the recovery pass (job/recovery.ts)
 * reads it. Descriptions hold no credentials: the next invocation uses its own.
 */

export interface StoreTarget {
  bucket: string;
  region: string;
}

/** A spill file ends so; `<file>.json` says which object and position its pending bytes belong at. */
export const SPILL_SUFFIX = '.spill';
/** A whole file (an image) whose upload failed has `<file>.upload.json` naming its object. */
export const WHOLE_FILE_SUFFIX = '.upload.json';

export interface SpillDescription extends StoreTarget {
  key: string;
  contentType: string;
  /** Object position of the file's byte `fileOffset`. */
  position: number;
  fileOffset: number;
}

export interface WholeFileDescription extends StoreTarget {
  key: string;
  contentType: string;
  /** A line to append to this journal once the file is stored. */
  journal?: { key: string; entry: Record<string, unknown> };
}

/** Sync: called from the upload's synchronous spill step, so the description never lags the bytes. */
export function describeSpill(spillPath: string, description: SpillDescription): void {
  const { bucket, region, key, contentType, position, fileOffset } = description;
  writeFileSync(`${spillPath}.json`, JSON.stringify({ bucket, region, key, contentType, position, fileOffset }));
}

/** Only the fields named here are written: a caller's wider object (a job) never reaches the disk. */
export async function describeWholeFile(filePath: string, description: WholeFileDescription): Promise<void> {
  const { bucket, region, key, contentType, journal } = description;
  await writeFile(`${filePath}${WHOLE_FILE_SUFFIX}`, JSON.stringify({ bucket, region, key, contentType, journal }));
}

export function readSpillDescription(spillPath: string): Promise<SpillDescription | undefined> {
  return readJson<SpillDescription>(`${spillPath}.json`);
}

export function readWholeFileDescription(describedPath: string): Promise<WholeFileDescription | undefined> {
  return readJson<WholeFileDescription>(describedPath);
}

function readJson<T>(path: string): Promise<T | undefined> {
  return readFile(path, 'utf8').then((text) => JSON.parse(text) as T, () => undefined);
}

// ---------------------------------------------------------------- an HLS recording's folder

/**
 * An HLS recording keeps a folder in the work dir while it records: HLS_STATE_FILE (its bucket
 * and object folder, written once), HLS_STORED_LOG (a line per segment stored, in order), and the
 * segments (and init) storage has not taken yet, each named by its sequence and duration. From
 * these the next invocation stores what is held and ends the playlist.
 */
export const HLS_STATE_FILE = 'hls.json';
const HLS_STORED_LOG = 'stored.log';
const HELD_INIT = 'init.mp4';
const HELD_SEGMENT = /^(\d+)-(\d+)\.m4s$/;

export interface HlsDescription extends StoreTarget {
  /** The recording's object folder, ending in '/'. */
  dirKey: string;
  /** The init segment's content type (video/mp4 or audio/mp4). */
  contentType: string;
}

export interface HeldSegment {
  sequence: number;
  durationSec: number;
}

export interface HlsLeftovers {
  description: HlsDescription;
  /** Segments stored, in order, as logged. */
  stored: HeldSegment[];
  /** Segments held on disk, by sequence. */
  held: Array<HeldSegment & { path: string }>;
  /** The init segment, when it is held (not stored yet). */
  heldInit?: string;
}

/** Sync, like describeSpill: written before the first byte is held. */
export function describeHls(dir: string, description: HlsDescription): void {
  const { bucket, region, dirKey, contentType } = description;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, HLS_STATE_FILE), JSON.stringify({ bucket, region, dirKey, contentType }));
}

export function logStoredSegment(dir: string, segment: HeldSegment): void {
  appendFileSync(join(dir, HLS_STORED_LOG), `${segment.sequence} ${segment.durationSec}\n`);
}

/** Writes a held segment (or the init, without `segment`) whole before its name appears: a kill leaves no torn one. */
export function holdHlsPart(dir: string, bytes: Buffer, segment?: HeldSegment): string {
  const path = join(dir, segment ? `${segment.sequence}-${Math.round(segment.durationSec * 1e6)}.m4s` : HELD_INIT);
  writeFileSync(`${path}.part`, bytes);
  renameSync(`${path}.part`, path);
  return path;
}

export async function readHlsLeftovers(dir: string): Promise<HlsLeftovers | undefined> {
  const description = await readJson<HlsDescription>(join(dir, HLS_STATE_FILE));
  if (!description) return undefined;
  const log = await readFile(join(dir, HLS_STORED_LOG), 'utf8').catch(() => '');
  const stored: HeldSegment[] = [];
  for (const line of log.split('\n')) {
    const [sequence, durationSec] = line.split(' ').map(Number);
    // A line cut by the kill ends the log.
    if (!Number.isInteger(sequence) || !Number.isFinite(durationSec)) break;
    stored.push({ sequence: sequence!, durationSec: durationSec! });
  }
  const held: HlsLeftovers['held'] = [];
  let heldInit: string | undefined;
  for (const name of await readdir(dir)) {
    if (name === HELD_INIT) heldInit = join(dir, name);
    const match = HELD_SEGMENT.exec(name);
    if (match) held.push({ sequence: Number(match[1]), durationSec: Number(match[2]) / 1e6, path: join(dir, name) });
  }
  held.sort((a, b) => a.sequence - b.sequence);
  return { description, stored, held, ...(heldInit ? { heldInit } : {}) };
}
