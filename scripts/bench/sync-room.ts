/**
 * A/V sync over a long room, for `npm run bench:sync` and its CI test
 * (test/e2e/scf-record-sync-long.e2e.test.ts).
 *
 * recordSyncRoom: the room simulator's metronome anchor (syncPattern: a white flash and a 1 kHz
 * beep at the same instants every 10 s from each join) recorded by the real AnchorRecorder into a
 * local store, both on one VirtualClock: real ffmpeg frames, the real encoder, faster than real
 * time (see shared/clock.ts).
 *
 * measureSync: what ffprobe finds in the stored files, nothing from the recorder's own counters —
 * each piece decoded whole (its duration and frames), its flashes and beeps (test/support's
 * syncMarksOfFile), each flash placed in room time (the piece's start is the sum of the pieces
 * before it) and matched with the mark the room made then, the offset audio minus video at every
 * mark, its worst and its trend, and the total duration against the room's.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { realClock, VirtualClock, type Clock, type VirtualClockStats } from '../../shared/clock';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { createLogger } from '../../shared/log';
import { AnchorRecorder, type AnchorRecording } from '../../shared/recording/anchor-recorder';
import { createRoomSimulator, parseRoomScenario, SYNC_MARK_SECONDS, type RoomScenario } from '../../shared/sources/room-simulator';
import type { RoomExitReason } from '../../shared/sources/room-source';
import { createLocalStore } from '../../shared/storage/local';
import { GrowingObjectUpload } from '../../shared/upload/growing-object';
import { decodeMediaFile, syncMarksOfFile, type DecodedMedia } from '../../test/support/media-tools';

export interface SyncRoomOptions {
  /** The room's length. */
  minutes: number;
  /** MaxMediaFileDuration: each stored piece at most this long. */
  pieceMinutes?: number;
  /** The anchor leaves at this second of the room and comes back at `returnAtSec`. */
  leaveAtSec?: number;
  returnAtSec?: number;
  width?: number;
  height?: number;
  fps?: number;
  /** On the real clock instead (room time = wall time): to compare with the virtual clock. */
  realTime?: boolean;
  /** Where the local store keeps the pieces (a fresh temporary directory by default). */
  dir?: string;
  /**
   * Delivery stalls: what the room delivers from `atSec` for `forMs` (its audio, or everything) is
   * held and then handed over at once, in order: with its own timestamps, as after a blocked event
   * loop, or stamped when handed over, as by a starved room process (liteav's stamps arrival).
   */
  stalls?: DeliveryStall[];
  /** Called every `progressEverySec` real seconds with the room time reached (s). */
  onProgress?: (roomSec: number, wallSec: number) => void;
  progressEverySec?: number;
}

export interface DeliveryStall {
  atSec: number;
  forMs: number;
  media: 'audio' | 'both';
  stampedOnRelease?: boolean;
}

export interface SyncRoomRun {
  scenario: RoomScenario;
  /** The stored pieces, in order. */
  files: string[];
  recording: AnchorRecording;
  /** What the room recorded: from the first join to the end (or to leaving for good). */
  roomSec: number;
  wallSec: number;
  /** The virtual clock's counts; undefined on the real clock. */
  clock: VirtualClockStats | undefined;
}

const ANCHOR = 'metronome';

/** The metronome's room: one presence, or two around a leave and return. */
export function syncScenario(options: SyncRoomOptions): RoomScenario {
  const { width = 320, height = 240, fps = 15 } = options;
  const anchor = { userId: ANCHOR, width, height, fps, syncPattern: true };
  const endSec = options.minutes * 60;
  const leaving = options.leaveAtSec !== undefined;
  if (leaving !== (options.returnAtSec !== undefined)) throw new Error('leaving and returning go together: give both or neither');
  const presences = leaving
    ? [
        { ...anchor, joinAt: 0, leaveAt: options.leaveAtSec! },
        { ...anchor, joinAt: options.returnAtSec!, leaveAt: null },
      ]
    : [{ ...anchor, joinAt: 0, leaveAt: null }];
  return parseRoomScenario({ anchors: presences, end: { at: endSec, reason: 'dismissed' } });
}

/** Room times (s) of the marks the room makes: every SYNC_MARK_SECONDS of each presence, from its join. */
export function roomMarks(scenario: RoomScenario): number[] {
  const marks: number[] = [];
  for (const anchor of scenario.anchors) {
    const gone = Math.min(anchor.leaveAt ?? Infinity, scenario.end.at);
    for (let at = anchor.joinAt; at < gone; at += SYNC_MARK_SECONDS) marks.push(at);
  }
  return marks;
}

export async function recordSyncRoom(options: SyncRoomOptions): Promise<SyncRoomRun> {
  const scenario = syncScenario(options);
  const fps = scenario.anchors[0]!.fps;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'bench-sync-')));
  const store = createLocalStore({ root: dir, bucket: 'sync' });
  const logger = createLogger({ requestId: 'bench-sync', level: 'error' });
  const virtual = options.realTime ? undefined : new VirtualClock();
  const clock = virtual ?? realClock;
  const roomStart = clock.now();
  const ffmpegPath = resolveFfmpegPath();
  const room = createRoomSimulator(scenario, { ffmpegPath, clock });
  const keys: string[] = [];
  const recorder = new AnchorRecorder({
    userId: ANCHOR,
    mode: '02',
    ffmpegPath,
    logger,
    videoFps: fps,
    clock,
    maxPieceMs: options.pieceMinutes === undefined ? undefined : options.pieceMinutes * 60_000,
    openPiece: (index) => {
      const key = `piece-${index}.mp4`;
      keys[index] = key;
      return { file: new GrowingObjectUpload({ store, key, contentType: 'video/mp4', logger, giveUpAt: () => Infinity }) };
    },
  });
  const wallStart = performance.now();
  const progress = options.onProgress
    ? setInterval(() => options.onProgress!((clock.now() - roomStart) / 1000, (performance.now() - wallStart) / 1000), (options.progressEverySec ?? 10) * 1000)
    : undefined;
  const stalled = stalledDelivery(clock, roomStart, options.stalls ?? []);
  let exited!: (reason: RoomExitReason) => void;
  const out = new Promise<RoomExitReason>((resolve) => (exited = resolve));
  const errors: string[] = [];
  try {
    await room.enter({ sdkAppId: 1400000001, userId: 'recorder', userSig: 'sig', roomId: 20 }, {
      anchorJoined: () => {},
      anchorLeft: () => recorder.anchorLeft(),
      audioAvailable: () => {},
      videoAvailable: () => {},
      audioFrame: (frame) => stalled('audio', frame, (delivered) => recorder.audioFrame(delivered)),
      videoFrame: (frame) => stalled('video', frame, (delivered) => recorder.videoFrame(delivered)),
      exited: (reason) => exited(reason),
      error: (code, message) => errors.push(`${code}: ${message}`),
    });
    const reason = await out;
    if (reason !== 'dismissed') throw new Error(`the room ended ${reason}, not dismissed`);
    const recording = await recorder.stop();
    await room.leave();
    if (errors.length > 0) throw new Error(`the room simulator failed: ${errors.join('; ')}`);
    if (recording.error) throw new Error(`nothing recorded: ${recording.error}`);
    const first = Math.min(...scenario.anchors.map((anchor) => anchor.joinAt));
    const lastPresence = scenario.anchors[scenario.anchors.length - 1]!;
    const roomEnd = Math.min(lastPresence.leaveAt ?? Infinity, scenario.end.at);
    return {
      scenario,
      files: keys.map((key) => join(dir, 'sync', key)),
      recording,
      roomSec: roomEnd - first,
      wallSec: (performance.now() - wallStart) / 1000,
      clock: virtual && { ...virtual.stats },
    };
  } finally {
    clearInterval(progress);
  }
}

/** Delivers each frame at once, unless a stall holds it: then in order when the stall ends. */
function stalledDelivery(clock: Clock, roomStart: number, stalls: DeliveryStall[]) {
  const held = stalls.map(() => [] as Array<() => void>);
  // Set now, so each fires before any frame due at the same instant.
  for (const [i, stall] of stalls.entries()) clock.setTimeout(() => held[i]!.splice(0).forEach((deliver) => deliver()), stall.atSec * 1000 + stall.forMs);
  return <Frame extends { timestampMs: number }>(kind: 'audio' | 'video', frame: Frame, deliver: (frame: Frame) => void): void => {
    const roomMs = clock.now() - roomStart;
    const i = stalls.findIndex((stall) => (stall.media === 'both' || kind === 'audio') && roomMs >= stall.atSec * 1000 && roomMs < stall.atSec * 1000 + stall.forMs);
    if (i < 0) return deliver(frame);
    const stampedAt = stalls[i]!.stampedOnRelease ? stalls[i]!.atSec * 1000 + stalls[i]!.forMs : undefined;
    held[i]!.push(() => deliver(stampedAt === undefined ? frame : { ...frame, timestampMs: stampedAt }));
  };
}

export interface MeasuredMark {
  /** When the room made it (s). */
  roomSec: number;
  piece: number;
  /** The flash's time in its piece's file (s). */
  fileSec: number;
  /** Where the flash is in room time by the stored files (the pieces before + fileSec) minus roomSec, ms. */
  placementMs: number;
  /** Where the flash is in its file minus where the room's mark falls in it, piece n starting at n × the piece length, ms. */
  inPieceMs: number;
  /** The nearest beep minus the flash, ms; null: no beep within half a second. */
  offsetMs: number | null;
}

export interface MeasuredPiece {
  file: string;
  media: DecodedMedia;
  /** ffprobe's duration of the file (s). */
  durationSec: number;
  /** Where it starts in room time: the durations of the pieces before it, from the first join (s). */
  startRoomSec: number;
}

export interface SyncMeasurement {
  pieces: MeasuredPiece[];
  /** Every measurable mark found (a mark is measurable unless it falls on a cut between pieces, where the beep's start cannot be heard). */
  marks: MeasuredMark[];
  /** Measurable marks the room made whose flash is not in the files. */
  missing: number[];
  /** Flashes in the files that match no mark of the room (room time, s). */
  unexpected: number[];
  /** Beeps in the files that match no mark of the room (room time, s): sound where there should be silence. */
  unexpectedBeeps: number[];
  /** Marks at a cut between pieces (or at the very start), not measured. */
  atCuts: number[];
  /** Consecutive marks of one piece: (distance in the file) − (distance in the room), ms, worst. */
  worstSpacingErrorMs: number;
  worstOffsetMs: number;
  meanOffsetMs: number;
  /** Least-squares slope of offset against room time. */
  slopeMsPerHour: number;
  /** Mean offset of the marks in the last quarter of the room minus the first quarter's. */
  lastMinusFirstQuarterMs: number;
  totalSec: number;
  roomSec: number;
  durationErrorPercent: number;
}

/** How far a flash may sit from a mark's room time and still be that mark's; how far its beep. */
const MATCH_SEC = 0.5;
/** Marks this close to a piece's start or end are at a cut (the beep's start may be cut off). */
const CUT_MARGIN_SEC = 0.5;

export async function measureSync(run: Pick<SyncRoomRun, 'files' | 'scenario' | 'roomSec'>, options: { timeoutMs?: number; pieceSec?: number } = {}): Promise<SyncMeasurement> {
  const timeoutMs = options.timeoutMs ?? 600_000;
  const first = Math.min(...run.scenario.anchors.map((anchor) => anchor.joinAt));
  const made = roomMarks(run.scenario).map((at) => at - first);
  const pieces: MeasuredPiece[] = [];
  const marks: MeasuredMark[] = [];
  const unexpected: number[] = [];
  const unexpectedBeeps: number[] = [];
  const atCuts: number[] = [];
  const measurable: number[] = [];
  let worstSpacingErrorMs = 0;
  let startRoomSec = 0;
  for (const [index, file] of run.files.entries()) {
    const [media, found] = await Promise.all([decodeMediaFile(file, timeoutMs), syncMarksOfFile(file, timeoutMs)]);
    if (media.duration === undefined) throw new Error(`ffprobe gives no duration for ${file}`);
    const endRoomSec = startRoomSec + media.duration;
    pieces.push({ file, media, durationSec: media.duration, startRoomSec });
    for (const at of made) {
      if (at < startRoomSec - CUT_MARGIN_SEC || at > endRoomSec) continue;
      if (at < startRoomSec + CUT_MARGIN_SEC || at > endRoomSec - CUT_MARGIN_SEC) atCuts.push(at);
      else measurable.push(at);
    }
    for (const beep of found.beeps) {
      const placed = startRoomSec + beep;
      if (!made.some((at) => Math.abs(at - placed) <= MATCH_SEC)) unexpectedBeeps.push(placed);
    }
    let previous: MeasuredMark | undefined;
    for (const flash of found.flashes) {
      const placed = startRoomSec + flash;
      const mark = made.reduce((nearest, at) => (Math.abs(at - placed) < Math.abs(nearest - placed) ? at : nearest), Infinity);
      if (Math.abs(mark - placed) > MATCH_SEC) {
        unexpected.push(placed);
        continue;
      }
      if (!measurable.includes(mark)) continue; // at a cut
      const beep = found.beeps.reduce((nearest, time) => (Math.abs(time - flash) < Math.abs(nearest - flash) ? time : nearest), Infinity);
      const measured: MeasuredMark = {
        roomSec: mark,
        piece: index,
        fileSec: flash,
        placementMs: (placed - mark) * 1000,
        inPieceMs: (flash - (mark - index * (options.pieceSec ?? 0))) * 1000,
        offsetMs: Math.abs(beep - flash) <= MATCH_SEC ? (beep - flash) * 1000 : null,
      };
      if (previous) worstSpacingErrorMs = Math.max(worstSpacingErrorMs, Math.abs((flash - previous.fileSec - (mark - previous.roomSec)) * 1000));
      previous = measured;
      marks.push(measured);
    }
    startRoomSec = endRoomSec;
  }
  // Marks the room made after the files end (a recording cut short) are missing too.
  for (const at of made) if (at > startRoomSec) measurable.push(at);
  const seen = new Set(marks.map((mark) => mark.roomSec));
  const offsets = marks.filter((mark) => mark.offsetMs !== null) as Array<MeasuredMark & { offsetMs: number }>;
  const totalSec = startRoomSec;
  const quarter = (from: number, to: number) => mean(offsets.filter((mark) => mark.roomSec >= from * run.roomSec && mark.roomSec < to * run.roomSec).map((mark) => mark.offsetMs));
  return {
    pieces,
    marks,
    missing: measurable.filter((at) => !seen.has(at)),
    unexpected,
    unexpectedBeeps,
    atCuts: [...new Set(atCuts)],
    worstSpacingErrorMs,
    worstOffsetMs: offsets.reduce((worst, mark) => Math.max(worst, Math.abs(mark.offsetMs)), 0),
    meanOffsetMs: mean(offsets.map((mark) => mark.offsetMs)),
    slopeMsPerHour: slope(offsets.map((mark) => [mark.roomSec / 3600, mark.offsetMs])),
    lastMinusFirstQuarterMs: quarter(0.75, 1.01) - quarter(0, 0.25),
    totalSec,
    roomSec: run.roomSec,
    durationErrorPercent: ((totalSec - run.roomSec) / run.roomSec) * 100,
  };
}

function mean(values: number[]): number {
  return values.length === 0 ? NaN : values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Least-squares slope of y on x; 0 when x does not vary. */
function slope(points: Array<[number, number]>): number {
  const mx = mean(points.map(([x]) => x));
  const my = mean(points.map(([, y]) => y));
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxx === 0 ? 0 : sxy / sxx;
}
