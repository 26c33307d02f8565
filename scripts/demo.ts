/**
 * `npm run demo`: an embedded RTMP server, a synthetic 720p stream published for
 * about 15 s, the real snapshot handler storing into ./demo-output with the local
 * driver; then the real recorder handler in a simulated two-anchor TRTC room, taking a
 * snapshot of each anchor every 2 s; and an HTML page showing all of it. Needs nothing but
 * `npm ci`.
 */
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { createRecordHandler } from '../functions/scf-record';
import { createSnapshotHandler } from '../functions/fc-snapshot';
import type { RecordResult } from '../shared/recording/record-job';
import { createRoomSimulator, parseRoomScenario } from '../shared/sources/room-simulator';
import { describeDecoding, type SnapshotResult } from '../shared/snapshot/job';
import { APPENDABLE_MARKERS_DIR, createLocalStore } from '../shared/storage/local';
import { makeTestStream } from '../test/support/media-tools';
import { publish, waitForPublishing } from '../test/support/publisher';
import { startNodeMediaServer } from '../test/support/rtmp-server';
import { defineCli, progressPrinter, runCli, UsageError } from './lib/cli';

export const demoCli = defineCli({
  name: 'demo',
  summary: 'Runs both functions for real on synthetic media and writes a page to look at the results.',
  usage: '[--output DIR]',
  options: {
    output: {
      type: 'string',
      placeholder: 'DIR',
      default: 'demo-output',
      description: 'where the stored objects and index.html go: a new or empty folder, or one an earlier demo wrote (what that demo wrote is replaced; nothing else is touched)',
    },
  },
  notes: [
    'Starts an RTMP server (node-media-server), publishes a 15 s 720p test stream, and runs the FC snapshot handler on it; then runs the\n' +
      'SCF recorder in a simulated TRTC room (teacher 0-8 s, student 2-6 s). Both store with the local driver under DIR.',
  ],
  examples: ['npm run demo', 'npm run demo -- --output local-output/demo'],
  exitCodes: [
    [0, 'every snapshot and recording stored'],
    [1, 'something was not stored, or the demo failed'],
    [2, 'a command-line mistake'],
  ],
});

let OUTPUT = resolve('demo-output');
const BUCKET = 'demo-bucket';
const PREFIX = 'snapshots';
const RECORD_BUCKET = 'demo-1250000000';

/** The demo's mark on its output folder, listing what it writes there: all a later run may delete. */
export const DEMO_OUTPUT_MARKER = '.demo-output.json';
/** hls.js's browser build, copied next to the page so it plays the HLS recordings in any browser. */
const HLS_PLAYER = 'hls.min.js';
const DEMO_WRITES = [BUCKET, RECORD_BUCKET, `${APPENDABLE_MARKERS_DIR}/${BUCKET}`, `${APPENDABLE_MARKERS_DIR}/${RECORD_BUCKET}`, 'index.html', 'result.json', 'recording.json', HLS_PLAYER];

/**
 * Readies `dir` for a run. A new or empty folder is used as it is. A folder an earlier run marked
 * loses what that run listed in its marker, and nothing else (a file added since stays). Any other
 * folder is refused, so `--output .` never empties a checkout. The marker goes in first, so a run
 * that dies half-way is still known as the demo's.
 */
export async function prepareDemoOutput(dir: string, option = '--output'): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new UsageError(`${option} ${dir} is a file: give a folder, new or empty`);
    if (code !== 'ENOENT') throw error;
    entries = [];
  }
  if (entries.length > 0) {
    if (!entries.includes(DEMO_OUTPUT_MARKER)) {
      throw new UsageError(
        `${option} ${dir} is not empty and no demo wrote it (it has no ${DEMO_OUTPUT_MARKER}); the demo deletes only what it wrote itself: give a new or empty folder, e.g. ${option} local-output/demo`,
      );
    }
    for (const written of await writtenBefore(join(dir, DEMO_OUTPUT_MARKER))) await rm(join(dir, written), { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, DEMO_OUTPUT_MARKER), JSON.stringify({ writtenBy: 'npm run demo', entries: DEMO_WRITES }, null, 2) + '\n');
}

/** The entries a marker lists, each a relative path that stays inside the folder; anything else is ignored. */
async function writtenBefore(marker: string): Promise<string[]> {
  let listed: unknown;
  try {
    listed = (JSON.parse(await readFile(marker, 'utf8')) as { entries?: unknown }).entries;
  } catch {
    return [];
  }
  if (!Array.isArray(listed)) return [];
  return listed.filter((entry): entry is string => {
    if (typeof entry !== 'string' || entry === '' || isAbsolute(entry)) return false;
    const path = normalize(entry);
    return path !== '.' && path !== DEMO_OUTPUT_MARKER && !path.split(sep).includes('..');
  });
}

interface ManifestEntry {
  key: string;
  stream_time: number;
  wall_time: string;
  written_at: string;
  uploaded_at: string | null;
  bytes: number | null;
}

async function main(output: string): Promise<number> {
  OUTPUT = resolve(output);
  await prepareDemoOutput(OUTPUT);
  say('making a 15 s synthetic 720p30 stream (cached after the first run)…');
  const stream = await makeTestStream({ width: 1280, height: 720, fps: 30, gopSeconds: 1, seconds: 15, audio: true });
  const server = await startNodeMediaServer();
  try {
    const url = server.url('demo');
    const publisher = publish(stream, url);
    await waitForPublishing(server, 'demo', 20_000);
    say(`publishing to ${url}; the publisher stops by itself after 15 s`);

    const handler = createSnapshotHandler({
      env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
      createStore: (job) => createLocalStore({ root: OUTPUT, bucket: job.bucket }),
      onProgress: progressPrinter(),
    });
    const event = { rtmp_url: url, bucket: BUCKET, region: 'cn-hangzhou', dst: PREFIX, idle_timeout: 4, latest: true, width: 640 };
    say(`invoking the FC handler with ${JSON.stringify(event)}`);
    const result = (await handler(Buffer.from(JSON.stringify(event)), { requestId: `demo-${randomUUID()}`, function: { timeout: 120 } })) as SnapshotResult;
    await publisher.exited;

    const bucketDir = join(OUTPUT, BUCKET);
    const manifest = JSON.parse(await readFile(join(bucketDir, PREFIX, 'manifest.json'), 'utf8')) as { snapshots: ManifestEntry[] };
    const recording = await recordSimulatedRoom();
    await copyFile(require.resolve(`hls.js/dist/${HLS_PLAYER}`), join(OUTPUT, HLS_PLAYER));
    await writeFile(join(OUTPUT, 'index.html'), timelinePage(result, manifest.snapshots) + recordingSection(recording));
    await writeFile(join(OUTPUT, 'result.json'), JSON.stringify(result, null, 2));
    await writeFile(join(OUTPUT, 'recording.json'), JSON.stringify(recording, null, 2));

    say(`stop reason: ${result.stop_reason}; ${result.counts.uploaded}/${result.counts.taken} snapshots stored (${describeDecoding(result.decode)})`);
    say(`snapshots:  ${join(bucketDir, PREFIX)}/`);
    say(`timeline:   ${join(OUTPUT, 'index.html')}`);
    say(`result:     ${join(OUTPUT, 'result.json')}`);
    say(`recording:  ${recording.Files.map((f) => `${f.UserId} ${f.Status === 1 ? 'stored' : 'FAILED'} (${f.Duration} s)`).join(', ')} → ${join(OUTPUT, 'recording.json')}`);
    return result.status !== 'ok' || recording.Files.some((f) => f.Status !== 1) ? 1 : 0;
  } finally {
    await server.stop();
  }
}

/** The recorder in a simulated room: two anchors, one of whom leaves early, dismissed after 8 s. */
async function recordSimulatedRoom(): Promise<RecordResult> {
  const scenario = parseRoomScenario({
    anchors: [
      { userId: 'teacher', joinAt: 0, leaveAt: null, width: 640, height: 360 },
      { userId: 'student', joinAt: 2, leaveAt: 6, width: 320, height: 240, sampleRate: 16000 },
    ],
    end: { at: 8, reason: 'dismissed' },
  });
  say('recording a simulated TRTC room: teacher 0-8 s, student 2-6 s, dismissed at 8 s…');
  const handler = createRecordHandler({
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    createRoom: () => createRoomSimulator(scenario),
    createStore: (target) => createLocalStore({ root: OUTPUT, bucket: target.bucket }),
  });
  const request = {
    SdkAppId: 1400000001,
    StrRoomId: 'demo-class',
    UserId: 'recorder',
    UserSig: 'demo-user-sig',
    CosConfig: { Region: 'ap-guangzhou', Bucket: RECORD_BUCKET, Path: '/recordings/' },
    Mode: '02',
    OutputFormat: 'hls+mp4',
    SnapshotInterval: 2,
  };
  return (await handler(request, { request_id: `demo-${randomUUID()}` })) as RecordResult;
}

function recordingSection(result: RecordResult): string {
  const escape = (text: string) => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const items = result.Files.map((file) => {
    const local = `${RECORD_BUCKET}/${decodeURIComponent(new URL(file.RecordFile).pathname.split(`/${RECORD_BUCKET}/`).pop() ?? '')}`;
    const caption = `<b>${escape(file.UserId)}</b> · ${file.Format === 'hls' ? `HLS, ${file.Segments} segments` : file.Format.toUpperCase()} · ${file.Duration} s · ${file.Size} bytes · ${escape(file.Message)}`;
    // HLS plays through hls.js (Media Source Extensions) where the browser has no HLS of its own.
    const video = file.Format === 'hls' ? `<video data-hls="${escape(local)}" controls width="320"></video>` : `<video src="${escape(local)}" controls width="320"></video>`;
    return `<figure>${video}<figcaption>${caption}</figcaption></figure>`;
  }).join('\n');
  const hlsPlayer = `<script src="${HLS_PLAYER}"></script><script>
for (const video of document.querySelectorAll('video[data-hls]')) {
  if (video.canPlayType('application/vnd.apple.mpegurl')) video.src = video.dataset.hls;
  else { const hls = new Hls(); hls.loadSource(video.dataset.hls); hls.attachMedia(video); }
}
</script>`;
  const snapshots = (result.Snapshots ?? [])
    .map((anchor) => `<p><b>${escape(anchor.UserId)}</b>: ${anchor.Count} snapshots while recording</p>`)
    .join('\n');
  const images = (result.Snapshots ?? [])
    .flatMap((anchor) => [anchor.FirstKey, anchor.LastKey].filter((key): key is string => key !== null))
    .map((key) => `<figure><img src="${RECORD_BUCKET}/${escape(key)}" alt=""><figcaption>${escape(key.split('/').pop()!)}</figcaption></figure>`)
    .join('\n');
  return `<h1>Simulated TRTC recording</h1><p>Room ${escape(String(result.StrRoomId))} · stop reason <b>${result.StopReason}</b> · mode 02, OutputFormat hls+mp4 · SnapshotInterval 2 s</p>\n${items}\n${hlsPlayer}\n${snapshots}\n${images}\n`;
}

function timelinePage(result: SnapshotResult, snapshots: ManifestEntry[]): string {
  const escape = (text: string) => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const cards = snapshots
    .map((s) => {
      const lag = s.uploaded_at ? `stored ${Date.parse(s.uploaded_at) - Date.parse(s.written_at)} ms after written` : 'not uploaded';
      return `<figure><img src="${BUCKET}/${escape(s.key)}" loading="lazy" alt=""><figcaption><b>${escape(s.key.split('/').pop()!)}</b><br>stream ${s.stream_time.toFixed(2)} s · ${escape(s.wall_time)}<br>${s.bytes ?? 0} bytes · ${lag}</figcaption></figure>`;
    })
    .join('\n');
  return `<!doctype html><meta charset="utf-8"><title>Snapshot timeline</title>
<style>body{font:14px system-ui;margin:2em}figure{display:inline-block;margin:.5em;width:320px}img{width:100%}figcaption{color:#444}</style>
<h1>Snapshot timeline</h1>
<p>${escape(result.source)} → ${escape(result.bucket)}/${escape(result.prefix)} · stop reason <b>${result.stop_reason}</b> · ${result.counts.uploaded}/${result.counts.taken} stored · ${escape(describeDecoding(result.decode))} · ${escape(result.started_at)} → ${escape(result.ended_at)}</p>
<p>Latest: <img src="${BUCKET}/${escape(result.prefix)}latest.jpg" style="width:160px;vertical-align:middle" alt=""></p>
${cards}
`;
}

function say(message: string): void {
  process.stderr.write(`[demo] ${message}\n`);
}

if (require.main === module) runCli(demoCli, (values) => main(values.output));
