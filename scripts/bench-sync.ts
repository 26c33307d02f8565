/**
 * `npm run bench:sync`: A/V sync held over hours (issue 20). The room simulator's metronome anchor
 * (a white flash and a 1 kHz beep at the same instants every 10 s) is recorded by the real
 * AnchorRecorder (mode 02) into a local store, room and recorder on one VirtualClock: real ffmpeg
 * frames and the real encoder, as fast as they go, each frame at exactly its time (see
 * shared/clock.ts and scripts/bench/sync-room.ts). Then ffprobe reads the stored files, and this
 * prints the offset (audio minus video) at every mark, its worst and its trend, and the stored
 * duration against the room's. Not for CI (test/e2e/scf-record-sync-long.e2e.test.ts is).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SYNC_MARK_SECONDS } from '../shared/sources/room-simulator';
import { measureSync, recordSyncRoom, type DeliveryStall, type SyncMeasurement, type SyncRoomRun } from './bench/sync-room';
import { defineCli, positiveInteger, positiveNumber, runCli, UsageError, type CliValues } from './lib/cli';

export const benchSyncCli = defineCli({
  name: 'bench:sync',
  summary: 'A/V sync of a recorded anchor over a long room, faster than real time: the offset at every mark, its trend, and the duration against the room.',
  options: {
    minutes: { type: 'string', placeholder: 'N', default: '120', description: "the room's length, in minutes of room time" },
    'piece-minutes': { type: 'string', placeholder: 'M', description: 'MaxMediaFileDuration: split the recording into pieces of at most M minutes' },
    'leave-at': { type: 'string', placeholder: 'S', description: 'the anchor leaves at second S of the room (with --return-at)' },
    'return-at': { type: 'string', placeholder: 'S', description: 'and comes back at second S (black and silence in between)' },
    'stall-every': { type: 'string', placeholder: 'S', description: "every S seconds, the room's delivery stalls (its audio; everything; everything, stamped late), then hands over what it held at once" },
    'stall-ms': { type: 'string', placeholder: 'MS', default: '400', description: 'how long each stall lasts' },
    width: { type: 'string', placeholder: 'PX', default: '320', description: "the anchor's picture width" },
    height: { type: 'string', placeholder: 'PX', default: '240', description: "the anchor's picture height" },
    fps: { type: 'string', placeholder: 'N', default: '15', description: "the anchor's frame rate (and the recording's)" },
    'real-time': { type: 'boolean', description: 'run on the real clock instead, in real time (to compare with the virtual clock)' },
    keep: { type: 'boolean', description: 'keep the stored files (their directory is printed)' },
  },
  notes: ['Limits (the issue): every |offset| ≤ 40 ms, no trend, the stored duration within 0.1% of the room\'s, no frame dropped.'],
  examples: [
    'npm run bench:sync -- --minutes 120',
    'npm run bench:sync -- --minutes 30 --piece-minutes 7',
    'npm run bench:sync -- --minutes 10 --leave-at 125 --return-at 193',
    'npm run bench:sync -- --minutes 120 --stall-every 37',
  ],
  exitCodes: [
    [0, 'measured, and within the limits'],
    [1, 'the benchmark failed, or a limit was not met (the report says which)'],
    [2, 'a command-line mistake'],
  ],
});

const MAX_OFFSET_MS = 40;
const MAX_DURATION_ERROR_PERCENT = 0.1;

async function main(values: CliValues<typeof benchSyncCli.options>): Promise<number> {
  const minutes = positiveNumber('minutes', values.minutes);
  const pieceMinutes = values['piece-minutes'] === undefined ? undefined : positiveInteger('piece-minutes', values['piece-minutes']);
  const leaveAtSec = values['leave-at'] === undefined ? undefined : positiveNumber('leave-at', values['leave-at']);
  const returnAtSec = values['return-at'] === undefined ? undefined : positiveNumber('return-at', values['return-at']);
  if ((leaveAtSec === undefined) !== (returnAtSec === undefined)) throw new UsageError('--leave-at and --return-at go together: give both or neither');
  if (leaveAtSec !== undefined && !(leaveAtSec < returnAtSec! && returnAtSec! < minutes * 60)) throw new UsageError('give 0 < --leave-at < --return-at < the room\'s end (--minutes × 60)');
  const width = positiveInteger('width', values.width);
  const height = positiveInteger('height', values.height);
  const fps = positiveInteger('fps', values.fps);
  const stalls = deliveryStalls(minutes * 60, values['stall-every'] === undefined ? undefined : positiveNumber('stall-every', values['stall-every']), positiveInteger('stall-ms', values['stall-ms']));

  const dir = await mkdtemp(join(tmpdir(), 'bench-sync-'));
  try {
    const what = [`${minutes} min`, `${width}x${height} ${fps} fps + audio (mode 02)`];
    if (pieceMinutes !== undefined) what.push(`pieces of ${pieceMinutes} min`);
    if (leaveAtSec !== undefined) what.push(`leaving at ${leaveAtSec} s, back at ${returnAtSec} s`);
    if (stalls.length > 0) what.push(`${stalls.length} delivery stalls of ${stalls[0]!.forMs} ms`);
    log(`recording ${what.join(', ')} on the ${values['real-time'] ? 'real' : 'virtual'} clock…`);
    const run = await recordSyncRoom({
      minutes,
      pieceMinutes,
      leaveAtSec,
      returnAtSec,
      width,
      height,
      fps,
      stalls,
      realTime: values['real-time'],
      dir,
      progressEverySec: 30,
      onProgress: (roomSec, wallSec) => log(`room ${(roomSec / 60).toFixed(1)} min after ${wallSec.toFixed(0)} s (${(roomSec / wallSec).toFixed(1)}x)`),
    });
    log(`recorded in ${run.wallSec.toFixed(1)} s; reading the ${run.files.length} stored file(s) with ffprobe…`);
    const measureStart = performance.now();
    const measured = await measureSync(run, { pieceSec: pieceMinutes === undefined ? undefined : pieceMinutes * 60 });
    const measureSec = (performance.now() - measureStart) / 1000;
    const problems = report(run, measured, measureSec);
    if (values.keep) console.log(`\nstored files kept in ${dir}`);
    for (const problem of problems) console.log(`NOT MET: ${problem}`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}

/** A stall every `everySec` of the room, the three kinds in turn; none at a mark (its beep would be cut). */
function deliveryStalls(roomSec: number, everySec: number | undefined, forMs: number): DeliveryStall[] {
  if (everySec === undefined) return [];
  if (forMs >= everySec * 1000) throw new UsageError('--stall-ms must be shorter than --stall-every');
  const kinds: Array<Pick<DeliveryStall, 'media' | 'stampedOnRelease'>> = [{ media: 'audio' }, { media: 'both' }, { media: 'both', stampedOnRelease: true }];
  const stalls: DeliveryStall[] = [];
  for (let atSec = everySec; atSec + forMs / 1000 < roomSec; atSec += everySec) {
    const nextMarkSec = Math.ceil((atSec - 0.2) / SYNC_MARK_SECONDS) * SYNC_MARK_SECONDS;
    if (nextMarkSec <= atSec + forMs / 1000 + 0.2) continue;
    stalls.push({ atSec, forMs, ...kinds[stalls.length % kinds.length]! });
  }
  return stalls;
}

/** Prints the measurement; returns the limits not met. */
function report(run: SyncRoomRun, measured: SyncMeasurement, measureSec: number): string[] {
  const ms = (value: number | null) => (value === null ? 'no beep' : `${value >= 0 ? '+' : ''}${value.toFixed(0)}`);
  console.log(`\noffset at every mark, audio minus video (ms), a mark every ${SYNC_MARK_SECONDS} s of room time; one row per room minute`);
  const byMinute = new Map<number, string[]>();
  for (const mark of measured.marks) {
    const minute = Math.floor(mark.roomSec / 60);
    const row = byMinute.get(minute) ?? [];
    row.push(`${(mark.roomSec % 60).toFixed(0).padStart(2)}s ${ms(mark.offsetMs).padStart(4)}`);
    byMinute.set(minute, row);
  }
  for (const [minute, row] of [...byMinute].sort(([a], [b]) => a - b)) console.log(`  min ${String(minute).padStart(3)}: ${row.join('  ')}`);

  const expected = measured.marks.length + measured.missing.length;
  const missingText = measured.missing.length > 8 ? `${measured.missing.length}, from ${measured.missing[0]} s` : measured.missing.length ? `${measured.missing.join(', ')} s` : 'none';
  const withOffset = measured.marks.filter((mark) => mark.offsetMs !== null).length;
  const worstPlacement = measured.marks.reduce((worst, mark) => Math.max(worst, Math.abs(mark.placementMs)), 0);
  console.log('\nsummary');
  console.log(`  marks measured         ${withOffset} of ${expected} expected (missing: ${missingText}; unexpected flashes: ${measured.unexpected.length}, beeps: ${measured.unexpectedBeeps.length}; at cuts or the start, not measurable: ${measured.atCuts.length})`);
  console.log(`  worst |offset|         ${measured.worstOffsetMs.toFixed(2)} ms (limit ${MAX_OFFSET_MS} ms); mean ${measured.meanOffsetMs.toFixed(2)} ms`);
  console.log(`  trend                  ${measured.slopeMsPerHour.toFixed(2)} ms per hour (least squares: ${(measured.slopeMsPerHour * (run.roomSec / 3600)).toFixed(2)} ms over the room); last quarter's mean minus the first's ${Number.isNaN(measured.lastMinusFirstQuarterMs) ? 'n/a (no marks in a quarter)' : `${measured.lastMinusFirstQuarterMs.toFixed(1)} ms`}`);
  console.log(`  mark spacing           worst ${measured.worstSpacingErrorMs.toFixed(1)} ms off the room's, in file time`);
  console.log(`  marks in room time     worst ${worstPlacement.toFixed(1)} ms off (placed by the durations of the files before theirs; each file begins with the AAC encoder's delay, 1024 samples, which its fragmented MP4 does not trim)`);
  if (measured.pieces.length > 1) {
    const worstInPiece = measured.marks.reduce((worst, mark) => Math.max(worst, Math.abs(mark.inPieceMs)), 0);
    console.log(`  marks in their piece   worst ${worstInPiece.toFixed(1)} ms off (piece n from n × the piece length of room time)`);
  }
  console.log(`  stored duration        ${measured.totalSec.toFixed(3)} s in ${measured.pieces.length} file(s) (ffprobe) vs the room's ${measured.roomSec.toFixed(3)} s: ${measured.durationErrorPercent >= 0 ? '+' : ''}${measured.durationErrorPercent.toFixed(4)}% (${((measured.totalSec - measured.roomSec) * 1000).toFixed(0)} ms)`);
  for (const [index, piece] of measured.pieces.entries()) {
    const streams = piece.media.streams.map((stream) => `${stream.type} ${stream.codec} ${stream.frames} frames ${stream.duration?.toFixed(3) ?? '?'} s`).join(', ');
    if (measured.pieces.length > 1 || index === 0) console.log(`    file ${index}: ${piece.durationSec.toFixed(3)} s from room ${piece.startRoomSec.toFixed(3)} s — ${streams}`);
  }
  console.log(`  dropped frames         ${run.recording.droppedFrames}`);
  console.log(`  late audio cut         ${run.recording.pieces.reduce((sum, piece) => sum + piece.lateAudioMs, 0)} ms (came too late for its time, after a stall)`);
  const failed = run.recording.pieces.filter((piece) => piece.error);
  for (const piece of failed) console.log(`  piece ${piece.index} failed       ${piece.error}`);
  console.log(`  wall time              ${run.wallSec.toFixed(1)} s recording (${(run.roomSec / run.wallSec).toFixed(1)}x real time), ${measureSec.toFixed(1)} s ffprobe`);
  if (run.clock) console.log(`  virtual clock          ${run.clock.steps} steps; waited for ffmpeg ${run.clock.waits} times, ${(run.clock.waitedMs / 1000).toFixed(1)} s in all`);
  else console.log('  clock                  real');

  const problems: string[] = [];
  if (measured.missing.length > 0 || withOffset < expected) problems.push(`${expected - withOffset} of ${expected} marks not measured`);
  if (measured.unexpected.length > 0) problems.push(`${measured.unexpected.length} flashes at no mark of the room`);
  if (measured.unexpectedBeeps.length > 0) problems.push(`${measured.unexpectedBeeps.length} beeps at no mark of the room`);
  if (measured.worstOffsetMs > MAX_OFFSET_MS) problems.push(`worst |offset| ${measured.worstOffsetMs.toFixed(1)} ms > ${MAX_OFFSET_MS} ms`);
  if (Math.abs(measured.durationErrorPercent) > MAX_DURATION_ERROR_PERCENT) problems.push(`duration off by ${measured.durationErrorPercent.toFixed(3)}% > ${MAX_DURATION_ERROR_PERCENT}%`);
  if (run.recording.droppedFrames > 0) problems.push(`${run.recording.droppedFrames} frames dropped`);
  if (failed.length > 0) problems.push(`${failed.length} piece(s) failed (what their encoder wrote before is stored)`);
  return problems;
}

function log(message: string): void {
  process.stderr.write(`[bench:sync] ${message}\n`);
}

if (require.main === module) runCli(benchSyncCli, main);
