import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { imageFileProblem } from '../outputs/images/check';
import { CONTENT_TYPES, type ImageFormat } from '../outputs/images/format';
import type { Logger } from '../log';
import { AppendJournal } from '../upload/journal';
import type { ObjectStore } from '../storage/types';
import type { DeadWorkDir } from '../work-dirs';
import { parseSnapshotFileName, timelineOfImage } from './args';
import { slotOf } from './feed-planner';
import { journalKey, snapshotKey } from './keys';

/** One line per imager: how its images' keys follow from their names. */
export const RUNS_FILE = 'runs.jsonl';

/** Written into the work dir's owner file when a job starts (no credentials). */
export interface SnapshotRecoveryInfo {
  bucket: string;
  region: string;
  prefix: string;
  format: ImageFormat;
  intervalSec: number;
  requestId: string;
}

export interface ImagerNote {
  run: number;
  /** Timeline ms of imager time 0. */
  baseMs: number;
  /** The slot grid's origin (timeline ms) and spacing. */
  originMs: number;
  intervalMs: number;
}

/**
 * Stores the images a killed invocation had written but not uploaded, under the keys it would
 * have used, and adds them to the journal. Resolves true when nothing is left to store.
 */
export async function recoverSnapshots(
  dead: DeadWorkDir<SnapshotRecoveryInfo>,
  storeFor: (target: { bucket: string; region: string }) => ObjectStore,
  logger: Logger,
  budgetEndsAt: number,
): Promise<boolean> {
  const info = dead.owner?.recovery;
  if (!info) return true;
  const runs = await readRunNotes(join(dead.dir, RUNS_FILE));
  const images = (await readdir(dead.dir))
    .map((name) => ({ name, parsed: parseSnapshotFileName(name, info.format) }))
    .filter((entry): entry is { name: string; parsed: { run: number; ms: number } } => entry.parsed !== undefined)
    .sort((a, b) => a.parsed.run - b.parsed.run || a.parsed.ms - b.parsed.ms);
  if (images.length === 0) return true;

  const store = storeFor({ bucket: info.bucket, region: info.region });
  const journal = new AppendJournal(store, journalKey(info.prefix), { logger });
  let stored = 0;
  let left = images.length;
  try {
    for (const { name, parsed } of images) {
      if (Date.now() >= budgetEndsAt) break;
      const path = join(dead.dir, name);
      const { problem, bytes } = await imageFileProblem(info.format, path);
      if (!problem) {
        const timeMs = keyTime(runs.get(parsed.run), parsed.ms) ?? (await stat(path)).mtimeMs;
        const key = snapshotKey(info.prefix, timeMs, info.format, info.intervalSec < 1);
        await store.putFile(key, path, { contentType: CONTENT_TYPES[info.format] });
        journal.add({ key, run: parsed.run, wall_time: new Date(timeMs).toISOString(), bytes, status: 'uploaded', recovered: true, request_id: info.requestId });
        stored++;
      }
      await rm(path, { force: true });
      left--;
    }
  } finally {
    await journal.close();
    logger.info('stored the images of a killed invocation', { requestId: info.requestId, stored, left });
  }
  return left === 0;
}

/** The key time the live job gave this image: its slot on the grid (see FeedPlanner.slotOf). */
function keyTime(note: ImagerNote | undefined, imagerMs: number): number | undefined {
  if (!note) return undefined;
  const timeMs = timelineOfImage(imagerMs, note.baseMs);
  return note.originMs + slotOf(timeMs, note.originMs, note.intervalMs) * note.intervalMs;
}

async function readRunNotes(path: string): Promise<Map<number, ImagerNote>> {
  const notes = new Map<number, ImagerNote>();
  const text = await readFile(path, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    try {
      const note = JSON.parse(line) as ImagerNote;
      notes.set(note.run, note);
    } catch {
      // A line cut by the kill.
    }
  }
  return notes;
}
