import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log';
import type { ObjectStore } from '../storage/types';
import type { DeadWorkDir } from '../work-dirs';

/** Spill files end so; each has `<file>.json` naming the object and position its bytes belong at. */
export const SPILL_SUFFIX = '.spill';
/** A whole file (a snapshot) whose upload failed has `<file>.upload.json` naming its object. */
export const UPLOAD_SUFFIX = '.upload.json';
const APPEND_BYTES = 16 * 1024 * 1024;

/** Written into the work dir's owner file when a recording starts (no credentials). */
export interface RecordRecoveryInfo {
  bucket: string;
  region: string;
}

interface SpillDescription {
  bucket: string;
  region: string;
  key: string;
  contentType: string;
  /** Object position of the file's byte `fileOffset`. */
  position: number;
  fileOffset: number;
}

/**
 * Appends what a killed (or out-of-time) invocation could not store to its objects, where it
 * belongs: after what the object already holds, skipping bytes that did get stored before the
 * kill. Resolves true when nothing is left to store.
 */
export async function recoverRecordings(
  dead: DeadWorkDir<RecordRecoveryInfo>,
  storeFor: (target: { bucket: string; region: string }) => ObjectStore,
  logger: Logger,
  budgetEndsAt: number,
): Promise<boolean> {
  let left = 0;
  for (const name of await readdir(dead.dir, { recursive: true })) {
    if (name.endsWith(UPLOAD_SUFFIX)) {
      const described = join(dead.dir, name);
      const file = described.slice(0, -UPLOAD_SUFFIX.length);
      const target = await readFile(described, 'utf8').then((text) => JSON.parse(text) as Omit<SpillDescription, 'position' | 'fileOffset'>, () => undefined);
      if (!target) continue;
      const stored = await storeFor(target)
        .putFile(target.key, file, { contentType: target.contentType })
        .then(() => true, (error: unknown) => (logger.warn('storing a killed recording’s snapshot failed', { key: target.key, error }), false));
      if (stored) await rm(described, { force: true });
      else left++;
      continue;
    }
    if (!name.endsWith(SPILL_SUFFIX)) continue;
    const path = join(dead.dir, name);
    const description = await readFile(`${path}.json`, 'utf8').then((text) => JSON.parse(text) as SpillDescription, () => undefined);
    if (!description) continue; // spilled nothing yet
    const done = await appendSpill(path, description, storeFor({ bucket: description.bucket, region: description.region }), budgetEndsAt).catch((error: unknown) => {
      logger.warn('storing a killed recording’s leftover failed', { key: description.key, error });
      return false;
    });
    if (done) await rm(path, { force: true });
    else left++;
  }
  return left === 0;
}

async function appendSpill(path: string, spill: SpillDescription, store: ObjectStore, budgetEndsAt: number): Promise<boolean> {
  const length = (await store.head(spill.key))?.size ?? 0;
  // Bytes between what the object holds and where the spill starts are gone: appending after
  // them would leave a hole, so such a spill cannot be used.
  if (length < spill.position) throw new Error(`object holds ${length} bytes, spill starts at ${spill.position}`);
  const fd = openSync(path, 'r');
  try {
    let position = length;
    let offset = spill.fileOffset + (length - spill.position);
    for (;;) {
      if (Date.now() >= budgetEndsAt) return false;
      const body = Buffer.allocUnsafe(APPEND_BYTES);
      const read = readSync(fd, body, 0, body.length, offset);
      if (read === 0) return true;
      position = (await store.append(spill.key, body.subarray(0, read), position, { contentType: spill.contentType })).nextPosition;
      offset += read;
    }
  } finally {
    closeSync(fd);
  }
}
