/**
 * `npm run bench:snapshot`: the original rtmp-snapshot sample's ffmpeg command and this function,
 * side by side on the same live 1080p30 stream (keyframe every 1 s, 3 B-frames, 60 s), in one run.
 * Prints, for a steady-state window (from 10 s after both started to 5 s before the stream ends):
 * CPU seconds per minute of stream (user+sys) of ffmpeg alone and of the whole process (Node and
 * its ffmpegs), the ratios, CPU per image; and over the whole run: upload lag (written → stored in
 * the OSS emulator) and freshness (its keyframe reached us → stored), p50/p95/max.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOssEmulator } from '../test/emulators/oss-emulator';
import { makeTestStream } from '../test/support/media-tools';
import { publish, waitForPublishing } from '../test/support/publisher';
import { startNodeMediaServer } from '../test/support/rtmp-server';
import { defineCli, positiveInteger, runCli, UsageError, type CliValues } from './lib/cli';
import { describeDecoding, type DecodeReport } from '../shared/snapshot/job';

/** The steady-state window runs from 10 s in to 5 s before the end: a shorter stream leaves none. */
const MIN_SECONDS = 20;

export const benchSnapshotCli = defineCli({
  name: 'bench:snapshot',
  summary: "The original rtmp-snapshot sample's ffmpeg command and this function, side by side on one live 1080p30 stream: CPU, freshness, upload lag.",
  options: {
    seconds: { type: 'string', placeholder: 'S', default: '60', description: `length of the published stream (at least ${MIN_SECONDS})` },
  },
  notes: ['Makes the 1080p30 test stream once, cached in .cache/test-streams/; node-media-server and the OSS emulator run in this\nprocess, each contender in its own.'],
  examples: ['npm run bench:snapshot', 'npm run bench:snapshot -- --seconds 30'],
  exitCodes: [
    [0, 'measured (the table is on stdout)'],
    [1, 'the benchmark failed'],
    [2, 'a command-line mistake'],
  ],
});
const credentials = { accessKeyId: 'bench-ak', accessKeySecret: 'bench-secret' };

interface CpuSample {
  at: number;
  self: number;
  children: number;
}

interface ContenderReport {
  cpu: { self: number; children: number };
  samples: CpuSample[];
  result?: { counts: { taken: number; uploaded: number }; stop_reason: string; decode: DecodeReport };
}

/** CPU used between the two readings taken for the window (the first two samples). */
function windowCpu(samples: CpuSample[]): { ffmpeg: number; total: number; seconds: number } {
  const [a, b] = samples as [CpuSample, CpuSample];
  return { ffmpeg: b.children - a.children, total: b.self + b.children - a.self - a.children, seconds: (b.at - a.at) / 1000 };
}

function startContender(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'bench', 'contender.ts'), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  const report = new Promise<ContenderReport>((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(output.trim().split('\n').pop()!)) : reject(new Error(`contender exited ${code}`)))),
  );
  return { child, report };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(values: CliValues<typeof benchSnapshotCli.options>): Promise<number> {
  const streamSeconds = positiveInteger('seconds', values.seconds);
  if (streamSeconds < MIN_SECONDS) throw new UsageError(`--seconds must be at least ${MIN_SECONDS}: the steady-state window runs from 10 s in to 5 s before the end (got ${values.seconds})`);
  log(`making a ${streamSeconds} s 1080p30 stream with a keyframe every second (cached)…`);
  const stream = await makeTestStream({ width: 1920, height: 1080, fps: 30, gopSeconds: 1, seconds: streamSeconds, audio: true });
  const [server, oss, work] = await Promise.all([startNodeMediaServer(), startOssEmulator(credentials), mkdtemp(join(tmpdir(), 'bench-'))]);
  try {
    const url = server.url('bench');
    const publisher = publish(stream, url);
    await waitForPublishing(server, 'bench', 20_000);
    log(`publishing ${url}; both contenders pull it now`);

    const seedDir = join(work, 'seed');
    let windowFrom = 0;
    let windowTo = 0;
    const seed = startContender(['seed', url, seedDir]);
    const event = { rtmp_url: url, bucket: 'bench-bucket', region: 'cn-hangzhou', dst: 'bench', idle_timeout: 5 };
    const fn = startContender(['function', JSON.stringify(event)], {
      OSS_ENDPOINT: oss.endpoint,
      ALIBABA_CLOUD_ACCESS_KEY_ID: credentials.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: credentials.accessKeySecret,
      MEDIA_TMP_DIR: work,
    });

    // Readings for the steady-state window: 10 s in, and 5 s before the stream ends.
    const windowTimer = setTimeout(() => {
      windowFrom = Date.now();
      for (const contender of [seed, fn]) contender.child.kill('SIGUSR1');
    }, 10_000);
    const windowEndTimer = setTimeout(() => {
      windowTo = Date.now();
      for (const contender of [seed, fn]) contender.child.kill('SIGUSR1');
    }, (streamSeconds - 5) * 1000);
    await publisher.exited;
    clearTimeout(windowTimer);
    clearTimeout(windowEndTimer);
    log('publisher finished; the original sample would hang here forever, so the bench stops it after 5 s');
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    seed.child.kill('SIGUSR2');
    const [seedReport, fnReport] = await Promise.all([seed.report, fn.report]);

    const manifest = JSON.parse(oss.getObject('bench-bucket', 'bench/manifest.json')!.toString()) as {
      snapshots: Array<{ received_at: string | null; written_at: string; uploaded_at: string | null }>;
    };
    const stored = manifest.snapshots.filter((s) => s.uploaded_at);
    const lags = stored.map((s) => Date.parse(s.uploaded_at!) - Date.parse(s.written_at));
    const freshness = stored.filter((s) => s.received_at).map((s) => Date.parse(s.uploaded_at!) - Date.parse(s.received_at!));
    const imagesInWindow = stored.filter((s) => s.received_at && Date.parse(s.received_at) >= windowFrom && Date.parse(s.received_at) < windowTo).length;
    const seedFiles = (await readdir(seedDir)).length;
    const seedWindow = windowCpu(seedReport.samples);
    const fnWindow = windowCpu(fnReport.samples);
    const perMinute = (cpu: number, seconds: number) => ((cpu * 60) / seconds).toFixed(2);

    const rows = [
      ['', 'original sample (-r 1, every frame decoded)', 'this function'],
      ['snapshots', `${seedFiles} (local files, not uploaded)`, `${fnReport.result!.counts.uploaded} uploaded (${describeDecoding(fnReport.result!.decode)}, stop: ${fnReport.result!.stop_reason})`],
      [`steady state, ${fnWindow.seconds.toFixed(0)} s window`, '', ''],
      ['  ffmpeg CPU-s per minute', perMinute(seedWindow.ffmpeg, seedWindow.seconds), perMinute(fnWindow.ffmpeg, fnWindow.seconds)],
      ['  whole process CPU-s per minute', perMinute(seedWindow.total, seedWindow.seconds), perMinute(fnWindow.total, fnWindow.seconds)],
      ['whole run CPU-s (start-up included)', (seedReport.cpu.self + seedReport.cpu.children).toFixed(2), (fnReport.cpu.self + fnReport.cpu.children).toFixed(2)],
    ];
    for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(i === 0 ? 40 : 46)).join(''));
    console.log(`ffmpeg alone: ${(seedWindow.ffmpeg / fnWindow.ffmpeg).toFixed(1)}x less CPU than the original sample`);
    console.log(`whole process: ${(seedWindow.total / fnWindow.total).toFixed(1)}x less CPU   (target ≥ 15x, aim 20x)`);
    console.log(`CPU per image (whole process, steady state): ${((fnWindow.total / imagesInWindow) * 1000).toFixed(1)} ms over ${imagesInWindow} images`);
    console.log(`upload lag written→stored: p50 ${percentile(lags, 50)} ms, p95 ${percentile(lags, 95)} ms, max ${Math.max(...lags)} ms over ${lags.length} snapshots`);
    console.log(`freshness, keyframe received→stored (B-frames in the source): p50 ${percentile(freshness, 50)} ms, p95 ${percentile(freshness, 95)} ms, max ${Math.max(...freshness)} ms   (target: within one GOP + 1 s = 2000 ms)`);
    return 0;
  } finally {
    await Promise.all([server.stop(), oss.close()]);
  }
}

function log(message: string) {
  process.stderr.write(`[bench] ${message}\n`);
}

if (require.main === module) runCli(benchSnapshotCli, main);
