import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log';
import type { ObjectStore } from '../storage/types';
import { AppendJournal } from '../upload/journal';
import { hlsKeys, mediaPlaylist, PLAYLIST_CONTENT_TYPE, SEGMENT_CONTENT_TYPE } from '../media/hls-playlist';
import {
  HLS_STATE_FILE,
  logStoredSegment,
  readHlsLeftovers,
  readSpillDescription,
  readWholeFileDescription,
  SPILL_SUFFIX,
  WHOLE_FILE_SUFFIX,
  type SpillDescription,
  type StoreTarget,
} from '../upload/leftovers';
import type { DeadWorkDir } from '../work-dirs';

const APPEND_BYTES = 16 * 1024 * 1024;

export type StoreFor = (target: StoreTarget) => ObjectStore;

/**
 * The one recovery pass every job gets: stores what a killed (or out-of-time) invocation left
 * described in its work dir — whole files under their keys, spill files appended to their objects
 * where they belong (after what the object holds, skipping bytes stored before the kill), HLS
 * segments held back, after which the playlist is ended.
 * Resolves true when nothing described is left to store.
 */
export async function recoverLeftovers(dead: DeadWorkDir<unknown>, storeFor: StoreFor, logger: Logger, budgetEndsAt: number): Promise<boolean> {
  let left = 0;
  for (const name of await readdir(dead.dir, { recursive: true })) {
    if (Date.now() >= budgetEndsAt) return false;
    const path = join(dead.dir, name);
    let done: boolean | undefined;
    if (name.endsWith(WHOLE_FILE_SUFFIX)) done = await storeWholeFile(path, storeFor, logger);
    else if (name.endsWith(SPILL_SUFFIX)) done = await storeSpill(path, storeFor, logger, budgetEndsAt);
    else if (basename(name) === HLS_STATE_FILE) done = await endHlsRecording(dirname(path), storeFor, logger, budgetEndsAt);
    if (done === false) left++;
  }
  return left === 0;
}

async function storeWholeFile(describedPath: string, storeFor: StoreFor, logger: Logger): Promise<boolean> {
  const target = await readWholeFileDescription(describedPath);
  if (!target) return true; // cut by the kill while being written: its file is the job's own to recover
  const file = describedPath.slice(0, -WHOLE_FILE_SUFFIX.length);
  const store = storeFor(target);
  try {
    await store.putFile(target.key, file, { contentType: target.contentType });
  } catch (error) {
    logger.warn('storing a killed invocation’s file failed', { key: target.key, error });
    return false;
  }
  if (target.journal) {
    const journal = new AppendJournal(store, target.journal.key, { logger });
    journal.add({ ...target.journal.entry, status: 'uploaded', recovered: true });
    await journal.close();
  }
  await rm(describedPath, { force: true });
  await rm(file, { force: true });
  return true;
}

async function storeSpill(path: string, storeFor: StoreFor, logger: Logger, budgetEndsAt: number): Promise<boolean> {
  const description = await readSpillDescription(path);
  if (!description) return true; // spilled nothing yet
  const done = await appendSpill(path, description, storeFor(description), budgetEndsAt).catch((error: unknown) => {
    logger.warn('storing a killed invocation’s recording failed', { key: description.key, error });
    return false;
  });
  if (done) await rm(path, { force: true });
  return done;
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

/**
 * An HLS recording cut short: its held init and segments are stored in sequence after those the
 * log says were, and the playlist is rewritten to list them all, with EXT-X-ENDLIST. A segment
 * missing from the sequence ends the listing there: a playlist never skips media.
 */
async function endHlsRecording(dir: string, storeFor: StoreFor, logger: Logger, budgetEndsAt: number): Promise<boolean> {
  const leftovers = await readHlsLeftovers(dir);
  if (!leftovers) return true;
  const { description, stored, held, heldInit } = leftovers;
  const store = storeFor(description);
  const keys = hlsKeys(description.dirKey);
  const listed = [...stored];
  try {
    if (heldInit) await store.putFile(keys.init, heldInit, { contentType: description.contentType });
    for (const segment of held) {
      if (segment.sequence < listed.length) continue; // stored before the kill, its file not yet removed
      if (segment.sequence !== listed.length) {
        logger.warn('an HLS segment of a killed invocation is missing; its playlist ends before it', { key: description.dirKey, missing: listed.length });
        break;
      }
      if (Date.now() >= budgetEndsAt) return false;
      await store.putFile(keys.segment(segment.sequence), segment.path, { contentType: SEGMENT_CONTENT_TYPE });
      logStoredSegment(dir, segment);
      listed.push(segment);
    }
    if (listed.length > 0) await store.putBuffer(keys.playlist, Buffer.from(mediaPlaylist(listed, true)), { contentType: PLAYLIST_CONTENT_TYPE });
  } catch (error) {
    logger.warn('ending a killed invocation’s HLS recording failed', { key: description.dirKey, error });
    return false;
  }
  logger.info('ended a killed invocation’s HLS recording', { key: keys.playlist, segments: listed.length, stored: listed.length - stored.length });
  await rm(dir, { recursive: true, force: true });
  return true;
}
