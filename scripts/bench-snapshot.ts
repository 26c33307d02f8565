/**
 * `npm run bench:snapshot`: the seed command and this function, side by side on the
 * same live 1080p30 stream (keyframe every 1 s, 60 s), in one run.
 * Prints CPU seconds (user+sys, children included) and this function's upload lag
 * (snapshot written → object stored in the OSS emulator), p50/p95.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOssEmulator } from '../test/emulators/oss-emulator';
import { makeTestStream } from '../test/support/media-tools';
import { publish, waitForPublishing } from '../test/support/publisher';
import { startNodeMediaServer } from '../test/support/rtmp-server';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const credentials = { accessKeyId: 'bench-ak', accessKeySecret: 'bench-secret' };

interface ContenderReport {
  cpu: { self: number; children: number };
  result?: { counts: { taken: number; uploaded: number }; stop_reason: string; decode: string };
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

async function main() {
  log(`making a ${SECONDS} s 1080p30 stream with a keyframe every second (cached)…`);
  const stream = await makeTestStream({ width: 1920, height: 1080, fps: 30, gopSeconds: 1, seconds: SECONDS, audio: true });
  const [server, oss, work] = await Promise.all([startNodeMediaServer(), startOssEmulator(credentials), mkdtemp(join(tmpdir(), 'bench-'))]);
  try {
    const url = server.url('bench');
    const publisher = publish(stream, url);
    await waitForPublishing(server, 'bench', 20_000);
    log(`publishing ${url}; both contenders pull it now`);

    const seedDir = join(work, 'seed');
    const seed = startContender(['seed', url, seedDir]);
    const event = { rtmp_url: url, bucket: 'bench-bucket', region: 'cn-hangzhou', dst: 'bench', idle_timeout: 5 };
    const fn = startContender(['function', JSON.stringify(event)], {
      OSS_ENDPOINT: oss.endpoint,
      ALIBABA_CLOUD_ACCESS_KEY_ID: credentials.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: credentials.accessKeySecret,
      MEDIA_TMP_DIR: work,
    });

    await publisher.exited;
    log('publisher finished; the seed would hang here forever, so the bench stops it after 5 s');
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    seed.child.kill('SIGUSR2');
    const [seedReport, fnReport] = await Promise.all([seed.report, fn.report]);

    const manifest = JSON.parse(oss.getObject('bench-bucket', 'bench/manifest.json')!.toString()) as {
      snapshots: Array<{ written_at: string; uploaded_at: string | null }>;
    };
    const lags = manifest.snapshots.filter((s) => s.uploaded_at).map((s) => Date.parse(s.uploaded_at!) - Date.parse(s.written_at));
    const seedFiles = (await readdir(seedDir)).length;
    const seedTotal = seedReport.cpu.self + seedReport.cpu.children;
    const fnTotal = fnReport.cpu.self + fnReport.cpu.children;

    const rows = [
      ['', 'seed (-r 1, every frame decoded)', 'this function'],
      ['snapshots', `${seedFiles} (local only, not uploaded)`, `${fnReport.result!.counts.uploaded} uploaded (${fnReport.result!.decode} decoding, stop: ${fnReport.result!.stop_reason})`],
      ['ffmpeg CPU s', seedReport.cpu.children.toFixed(2), fnReport.cpu.children.toFixed(2)],
      ['process CPU s (node + ffmpeg)', seedTotal.toFixed(2), fnTotal.toFixed(2)],
    ];
    for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(i === 0 ? 32 : 38)).join(''));
    console.log(`ffmpeg CPU ratio (seed / function): ${(seedReport.cpu.children / fnReport.cpu.children).toFixed(1)}x   (target ≥ 10x)`);
    console.log(`process CPU ratio (seed / function): ${(seedTotal / fnTotal).toFixed(1)}x`);
    console.log(`upload lag written→stored: p50 ${percentile(lags, 50)} ms, p95 ${percentile(lags, 95)} ms, max ${Math.max(...lags)} ms over ${lags.length} snapshots   (target p95 ≤ 1000 ms)`);
  } finally {
    await Promise.all([server.stop(), oss.close()]);
  }
}

function log(message: string) {
  process.stderr.write(`[bench] ${message}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
