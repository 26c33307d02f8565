import { writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

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
