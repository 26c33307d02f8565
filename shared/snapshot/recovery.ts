import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { imageFileProblem } from '../outputs/images/check';
import { CONTENT_TYPES, type ImageFormat } from '../outputs/images/format';
import type { Logger } from '../log';
import { AppendJournal } from '../upload/journal';
import type { ObjectStore } from '../storage/types';
import type { DeadWorkDir } from '../work-dirs';
import { parseSnapshotFileName, snapshotSlot, type DecodeMode } from './args';
import { journalKey, snapshotKey } from './keys';

/** One line per connection (and per decode-mode change): how its images are named. */
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

interface RunNote {
  run: number;
  anchorWallMs: number;
  anchorPtsMs: number;
  mode: DecodeMode;
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
        const timeMs = keyTime(runs.get(parsed.run), parsed.ms, info.intervalSec) ?? (await stat(path)).mtimeMs;
        const key = snapshotKey(info.prefix, timeMs, info.format, info.intervalSec < 1);
        await store.putFile(key, path, { contentType: CONTENT_TYPES[info.format] });
        journal.add({ key, stream_time: parsed.ms / 1000, run: parsed.run, wall_time: new Date(timeMs).toISOString(), bytes, status: 'uploaded', recovered: true, request_id: info.requestId });
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

function keyTime(run: RunNote | undefined, ptsMs: number, intervalSec: number): number | undefined {
  if (!run) return undefined;
  const slot = snapshotSlot(ptsMs / 1000, run.anchorPtsMs / 1000, intervalSec, run.mode);
  return run.anchorWallMs + slot * intervalSec * 1000;
}

async function readRunNotes(path: string): Promise<Map<number, RunNote>> {
  const notes = new Map<number, RunNote>();
  const text = await readFile(path, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    try {
      const note = JSON.parse(line) as RunNote;
      notes.set(note.run, note);
    } catch {
      // A line cut by the kill.
    }
  }
  return notes;
}
