/**
 * `npm run bench:record`: what recording an anchor costs, and what stopping costs.
 *
 * 1. Encoder CPU per anchor-minute (user+sys of the encoder ffmpeg) and output size, at 720p15 and
 *    360p15 with audio (mode 02), for the x264 preset we ship and the one before it, and the extra
 *    cost of SnapshotInterval. The encoder runs with the recorder's own arguments (recordingArgs);
 *    only its pipes are replaced by files made beforehand (raw pictures in Matroska, raw PCM),
 *    so what is measured is the encoder alone.
 * 2. Stop → callback for a short and a long recording: the real AnchorRecorder records a 720p15
 *    anchor into the COS emulator through GrowingObjectUpload, on a clock running faster than
 *    real time; then stop(), the last fragment's append and the callback POST are timed.
 * 3. The room boundary: the whole recorder (the handler, its encoders, the room) recording the same
 *    720p15 anchors (with audio) in real time through `--room sim:` (frames made in the Node process)
 *    and `--room sidecar-sim:` (the same frames made by the liteav room process and sent to Node
 *    through its pipes, as the production room sends the SDK's), each in its own process; CPU of
 *    the whole process tree per anchor-minute, median of interleaved rounds.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deliverCallback } from '../shared/callback';
import { resolveFfmpegPath } from '../shared/ffmpeg/binary';
import { createLogger } from '../shared/log';
import { RawVideoMatroskaWriter } from '../shared/media/mkv-writer';
import { i420Size } from '../shared/media/raw-media';
import { ANCHOR_X264_PRESET, recordingArgs, recordingPipes } from '../shared/outputs/recording/encoder-args';
import { AnchorRecorder } from '../shared/recording/anchor-recorder';
import { createCosStore } from '../shared/storage/cos';
import { GrowingObjectUpload } from '../shared/upload/growing-object';
import { startCosEmulator } from '../test/emulators/cos-emulator';
import { cpuSeconds } from './bench/cpu';
import { defineCli, positiveInteger, positiveNumber, runCli, type CliValues } from './lib/cli';

const ffmpeg = resolveFfmpegPath();
const FPS = 15;
const SAMPLE_SECONDS = 20;

export const benchRecordCli = defineCli({
  name: 'bench:record',
  summary: "What recording an anchor costs (the encoder's CPU and bytes per anchor-minute) and what stopping costs (stop → stored → callback).",
  options: {
    rounds: { type: 'string', placeholder: 'N', default: '3', description: 'interleaved rounds of every encoder variant (the median is reported)' },
    'stop-minutes': { type: 'string', placeholder: 'M,M…', default: '1,10', description: 'recording lengths, in minutes, to stop after' },
    speed: { type: 'string', placeholder: 'X', default: '4', description: "how much faster than real time the recorder's clock runs for the stop measurement" },
    'room-seconds': { type: 'string', placeholder: 'S', default: '40', description: 'how long each room-boundary run records (real time)' },
    'room-anchors': { type: 'string', placeholder: 'N', default: '2', description: 'anchors in each room-boundary run' },
  },
  notes: [`Makes ${SAMPLE_SECONDS} s of raw 720p and 360p pictures once, cached in .cache/bench-record/ (about 520 MB); the COS emulator runs\nin this process.`],
  examples: ['npm run bench:record', 'npm run bench:record -- --rounds 1 --stop-minutes 1'],
  exitCodes: [
    [0, 'measured (the tables are on stdout)'],
    [1, 'the benchmark failed'],
    [2, 'a command-line mistake'],
  ],
});
const CACHE = resolve('.cache', 'bench-record');
const ROOMS = ['sim', 'sidecar-sim'] as const;

/** Raw pictures (testsrc2) in the Matroska framing the recorder sends, cached. */
async function rawVideo(width: number, height: number): Promise<string> {
  const path = join(CACHE, `raw-${width}x${height}-${FPS}fps-${SAMPLE_SECONDS}s.mkv`);
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  log(`making ${SAMPLE_SECONDS} s of raw ${width}x${height} pictures (cached)…`);
  const frames = spawnSync(ffmpeg, ['-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${FPS}`, '-t', String(SAMPLE_SECONDS), '-pix_fmt', 'yuv420p', '-f', 'rawvideo', '-'], { maxBuffer: 2 ** 31 });
  if (frames.status !== 0) throw new Error('could not make the raw pictures');
  const writer = new RawVideoMatroskaWriter(width, height);
  const out = createWriteStream(`${path}.partial`);
  out.write(writer.header());
  const size = i420Size(width, height);
  for (let i = 0; i * size < frames.stdout.length; i++) for (const part of writer.frame((i * 1000) / FPS, frames.stdout.subarray(i * size, (i + 1) * size))) out.write(part);
  out.end();
  await once(out, 'finish');
  renameSync(`${path}.partial`, path);
  return path;
}

function rawAudio(): string {
  const path = join(CACHE, `tone-48k-mono-${SAMPLE_SECONDS}s.s16le`);
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  const made = spawnSync(ffmpeg, ['-loglevel', 'error', '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${SAMPLE_SECONDS}`, '-f', 's16le', '-y', path]);
  if (made.status !== 0) throw new Error('could not make the raw audio');
  return path;
}

interface EncoderCost {
  label: string;
  cpuPerMinute: number;
  megabytesPerMinute: number;
}

/** The recorder's encoder arguments with its pipes replaced by files; CPU of that one ffmpeg. */
async function encoderCost(label: string, width: number, height: number, preset: string, snapshotIntervalSec: number | undefined, work: string): Promise<EncoderCost> {
  const pipes = recordingPipes({ video: true, audio: true });
  const videoFile = await rawVideo(width, height);
  const output = join(work, `${label.replace(/\W+/g, '-')}.mp4`);
  const snapshotDir = join(work, `snap-${label.replace(/\W+/g, '-')}`);
  mkdirSync(snapshotDir, { recursive: true });
  const args = recordingArgs({
    video: { width, height, fps: FPS },
    audio: { sampleRate: 48_000, channels: 1 },
    container: 'mp4',
    snapshots: snapshotIntervalSec === undefined ? undefined : { intervalSec: snapshotIntervalSec, outputPattern: join(snapshotDir, 'p0-%d.jpg') },
  }).map((arg) => {
    if (arg === `pipe:${pipes.video}`) return videoFile;
    if (arg === `pipe:${pipes.audio}`) return rawAudio();
    if (arg === `pipe:${pipes.output}`) return output;
    return arg === ANCHOR_X264_PRESET ? preset : arg;
  });
  const before = cpuSeconds().children;
  const child = spawn(ffmpeg, ['-y', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`${label}: encoder exited ${code}`);
  const cpu = cpuSeconds().children - before;
  const scale = 60 / SAMPLE_SECONDS;
  return { label, cpuPerMinute: cpu * scale, megabytesPerMinute: (statSync(output).size / 1024 / 1024) * scale };
}

interface RoomCost {
  room: (typeof ROOMS)[number];
  /** The whole tree: Node, encoders, the room (simulator or room process and its ffmpegs). */
  cpuPerAnchorMinute: number;
  nodeCpuPerAnchorMinute: number;
  dropped: number;
}

interface RoomRun {
  seconds: number;
  anchors: number;
}

/** The handler recording `anchors` 720p15 anchors for `seconds` through one kind of room, in its own process. */
async function roomCost(room: RoomCost['room'], work: string, { seconds, anchors }: RoomRun): Promise<RoomCost> {
  const scenario = { anchors: Array.from({ length: anchors }, (_, i) => ({ userId: `anchor${i}`, width: 1280, height: 720, fps: FPS })), end: { at: seconds, reason: 'dismissed' } };
  const before = cpuSeconds().children;
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'bench', 'record-room.ts'), room, JSON.stringify(scenario), join(work, `room-${room}`)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, MEDIA_TMP_DIR: work },
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const [code] = await once(child, 'close');
  const cpu = cpuSeconds().children - before;
  const report = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { nodeCpu: number; files?: Array<{ Status: number; DroppedFrames: number }>; error?: unknown };
  if (code !== 0 || !report.files || report.files.length !== anchors || report.files.some((file) => file.Status !== 1)) {
    throw new Error(`--room ${room}: the recording failed (exit ${code}): ${stdout}`);
  }
  const anchorMinutes = (anchors * seconds) / 60;
  return { room, cpuPerAnchorMinute: cpu / anchorMinutes, nodeCpuPerAnchorMinute: report.nodeCpu / anchorMinutes, dropped: report.files.reduce((sum, file) => sum + file.DroppedFrames, 0) };
}

/** stop() → stored → callback delivered, after `minutes` of 720p15 recorded faster than real time. */
async function stopToCallback(minutes: number, speed: number, store: ReturnType<typeof createCosStore>, callbackUrl: string, pictures: Buffer[]) {
  const logger = createLogger({ requestId: 'bench', level: 'error' });
  const startReal = performance.now();
  const virtualNow = () => (performance.now() - startReal) * speed;
  let storedBytes = 0;
  const recorder = new AnchorRecorder({
    userId: 'anchor',
    mode: '02',
    ffmpegPath: ffmpeg,
    logger,
    now: virtualNow,
    clockTickMs: 1000 / FPS / speed,
    openPiece: (index) => ({
      file: new GrowingObjectUpload({ store, key: `bench/${minutes}min-${index}.mp4`, contentType: 'video/mp4', logger, giveUpAt: () => Infinity, appendIntervalMs: 2_000 / speed }),
    }),
  });
  let next = 0;
  const feeder = setInterval(() => recorder.videoFrame({ userId: 'anchor', data: pictures[next++ % pictures.length]!, width: 1280, height: 720, timestampMs: virtualNow() }), 1000 / FPS / speed);
  await new Promise((done) => setTimeout(done, (minutes * 60_000) / speed));
  clearInterval(feeder);
  const stopAt = performance.now();
  const recording = await recorder.stop();
  for (const piece of recording.pieces) storedBytes += piece.upload?.storedBytes ?? 0;
  const callback = await deliverCallback(callbackUrl, { Files: recording.pieces.length });
  if (!callback.delivered) throw new Error('callback not delivered');
  const seconds = (performance.now() - stopAt) / 1000;
  const duration = recording.pieces.reduce((sum, piece) => sum + piece.durationSec, 0);
  return { minutes, seconds, storedBytes, duration, dropped: recording.droppedFrames };
}

async function main(values: CliValues<typeof benchRecordCli.options>): Promise<number> {
  const rounds = positiveInteger('rounds', values.rounds);
  const stopMinutes = values['stop-minutes'].split(',').map((minutes) => positiveNumber('stop-minutes', minutes));
  const speed = positiveNumber('speed', values.speed);
  const roomRun: RoomRun = { seconds: positiveNumber('room-seconds', values['room-seconds']), anchors: positiveInteger('room-anchors', values['room-anchors']) };
  const work = await mkdtemp(join(tmpdir(), 'bench-record-'));
  const cos = await startCosEmulator({ secretId: 'bench-id', secretKey: 'bench-key' });
  const receiver = createServer((request, response) => request.resume().on('end', () => response.end('ok'))).listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  const callbackUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/done`;
  try {
    const configs: Array<{ label: string; width: number; height: number; preset: string; snapshots?: number }> = [];
    for (const [width, height] of [[1280, 720], [640, 360]] as const) {
      for (const preset of [ANCHOR_X264_PRESET, 'veryfast']) configs.push({ label: `${height}p15 + AAC, ${preset}`, width, height, preset });
    }
    for (const interval of [1, 5]) configs.push({ label: `720p15 + AAC, ${ANCHOR_X264_PRESET}, SnapshotInterval ${interval}`, width: 1280, height: 720, preset: ANCHOR_X264_PRESET, snapshots: interval });
    // Interleaved rounds, medians: machine noise spreads over every variant alike.
    const samples = new Map<string, EncoderCost[]>();
    for (let round = 1; round <= rounds; round++) {
      log(`encoding, round ${round} of ${rounds}…`);
      for (const config of configs) {
        const cost = await encoderCost(config.label, config.width, config.height, config.preset, config.snapshots, work);
        samples.set(config.label, [...(samples.get(config.label) ?? []), cost]);
      }
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
    const costs: EncoderCost[] = configs.map(({ label }) => ({
      label,
      cpuPerMinute: median(samples.get(label)!.map((cost) => cost.cpuPerMinute)),
      megabytesPerMinute: median(samples.get(label)!.map((cost) => cost.megabytesPerMinute)),
    }));

    const roomSamples = new Map<RoomCost['room'], RoomCost[]>();
    for (let round = 1; round <= rounds; round++) {
      for (const room of ROOMS) {
        log(`recording ${roomRun.anchors} anchors at 720p15 for ${roomRun.seconds} s through --room ${room}, round ${round} of ${rounds}…`);
        roomSamples.set(room, [...(roomSamples.get(room) ?? []), await roomCost(room, work, roomRun)]);
      }
    }

    const store = createCosStore({ bucket: 'bench-1250000000', region: 'ap-guangzhou', endpoint: cos.endpoint, credentials: { secretId: 'bench-id', secretKey: 'bench-key' } });
    const frames = spawnSync(ffmpeg, ['-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=${FPS}`, '-frames:v', '30', '-pix_fmt', 'yuv420p', '-f', 'rawvideo', '-'], { maxBuffer: 2 ** 30 }).stdout;
    const size = i420Size(1280, 720);
    const pictures = Array.from({ length: 30 }, (_, i) => frames.subarray(i * size, (i + 1) * size));
    const stops = [];
    for (const minutes of stopMinutes) {
      log(`recording ${minutes} min of 720p15 at ${speed}x real time, then stopping…`);
      stops.push(await stopToCallback(minutes, speed, store, callbackUrl, pictures));
    }

    const base = (height: number) => costs.find((c) => c.label === `${height}p15 + AAC, ${ANCHOR_X264_PRESET}`)!;
    console.log(`encoder CPU per anchor-minute (user+sys, ${SAMPLE_SECONDS} s encoded, scaled to a minute; median of ${rounds} interleaved rounds), ${new Date().toISOString().slice(0, 10)}`);
    console.log('| encoder | CPU-s per anchor-minute | MB per minute | real-time anchors per core |');
    console.log('|---|---:|---:|---:|');
    for (const cost of costs) console.log(`| ${cost.label} | ${cost.cpuPerMinute.toFixed(2)} | ${cost.megabytesPerMinute.toFixed(1)} | ${(60 / cost.cpuPerMinute).toFixed(1)} |`);
    const veryfast720 = costs.find((c) => c.label === '720p15 + AAC, veryfast')!;
    console.log(`\n${ANCHOR_X264_PRESET} vs veryfast at 720p: ${(100 * (base(720).cpuPerMinute / veryfast720.cpuPerMinute - 1)).toFixed(0)}% CPU, ${(100 * (base(720).megabytesPerMinute / veryfast720.megabytesPerMinute - 1)).toFixed(0)}% bytes`);
    for (const interval of [1, 5]) {
      const withSnapshots = costs.find((c) => c.label.endsWith(`SnapshotInterval ${interval}`))!;
      const extra = withSnapshots.cpuPerMinute - base(720).cpuPerMinute;
      console.log(`SnapshotInterval ${interval}: ${extra >= 0 ? '+' : ''}${extra.toFixed(2)} CPU-s per anchor-minute at 720p (${(100 * (withSnapshots.cpuPerMinute / base(720).cpuPerMinute - 1)).toFixed(0)}%)`);
    }
    console.log(`\nstop → callback (the real AnchorRecorder, 720p15 + silence, into the COS emulator, clock at ${speed}x real time)`);
    console.log('| recording | stored | stop → stored → callback |');
    console.log('|---|---:|---:|');
    for (const stop of stops) console.log(`| ${stop.minutes} min (${stop.duration.toFixed(0)} s recorded, ${stop.dropped} frames dropped) | ${(stop.storedBytes / 1024 / 1024).toFixed(1)} MB | ${stop.seconds.toFixed(2)} s |`);
    console.log('target: the same for any length, ≤ 2 s');

    const roomCosts = ROOMS.map((room) => {
      const samples = roomSamples.get(room)!;
      return {
        room,
        cpu: median(samples.map((sample) => sample.cpuPerAnchorMinute)),
        node: median(samples.map((sample) => sample.nodeCpuPerAnchorMinute)),
        all: samples.map((sample) => sample.cpuPerAnchorMinute.toFixed(2)).join(', '),
        dropped: samples.map((sample) => sample.dropped).join(', '),
      };
    });
    console.log(`\nthe room boundary: the whole recorder, ${roomRun.anchors} anchors at 720p15 + audio (mode 02) for ${roomRun.seconds} s in real time, each run in its own process (median of ${rounds} interleaved rounds)`);
    console.log('| room | CPU-s per anchor-minute, whole tree | of which the Node process | rounds | frames dropped |');
    console.log('|---|---:|---:|---|---|');
    for (const cost of roomCosts) console.log(`| --room ${cost.room} | ${cost.cpu.toFixed(2)} | ${cost.node.toFixed(2)} | ${cost.all} | ${cost.dropped} |`);
    const [sim, sidecar] = roomCosts as [(typeof roomCosts)[number], (typeof roomCosts)[number]];
    const extra = sidecar.cpu / sim.cpu - 1;
    console.log(`sidecar-sim vs sim: ${extra >= 0 ? '+' : ''}${(100 * extra).toFixed(1)}% CPU per anchor-minute (target: at most +10% at 720p15: ${extra <= 0.1 ? 'met' : 'NOT met'})`);
    return 0;
  } finally {
    receiver.close();
    await cos.close();
    await rm(work, { recursive: true, force: true });
  }
}

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

if (require.main === module) runCli(benchRecordCli, main);

