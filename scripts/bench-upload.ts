/**
 * `npm run bench:upload`: uploads one file (200 MB by default) to each local emulator, as a single
 * streamed put and as multipart uploads with N parallel parts, from the file and from a pipe.
 * Each variant runs in its own process, so peak RSS (VmHWM) is that variant's alone; the
 * emulators run here and keep objects in this process's memory. `--help` for the options.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { startCosEmulator } from '../test/emulators/cos-emulator';
import { startOssEmulator } from '../test/emulators/oss-emulator';
import { BENCH_BUCKETS, BENCH_CREDENTIALS, type Variant } from './bench/upload-variant';
import { defineCli, positiveInteger, positiveNumber, runCli, type CliValues } from './lib/cli';

const MB = 1024 * 1024;

interface Report {
  seconds: number;
  rssBeforeKiB: number;
  peakRssKiB: number;
  attempts: number;
}

function runVariant(variant: Variant): Promise<Report> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'bench', 'upload-variant.ts'), JSON.stringify(variant)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(output.trim().split('\n').pop()!) as Report) : reject(new Error(`variant exited ${code}`)))),
  );
}

/** Incompressible but reproducible bytes, written once and shared by every variant. */
async function writeSource(file: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  let written = 0;
  let counter = 0;
  const source = new Readable({
    read() {
      const chunk = Buffer.alloc(Math.min(MB, bytes - written));
      for (let i = 0; i < chunk.length; i += 32) createHash('sha256').update(String(counter++)).digest().copy(chunk, i);
      written += chunk.length;
      hash.update(chunk);
      this.push(chunk.length > 0 ? chunk : null);
    },
  });
  await pipeline(source, createWriteStream(file));
  return hash.digest('hex');
}

export const benchUploadCli = defineCli({
  name: 'bench:upload',
  summary: 'Uploads one file to the OSS and COS emulators, as a single put and as multipart uploads, and prints speed and peak memory.',
  options: {
    'size-mb': { type: 'string', placeholder: 'MB', default: '200', description: 'size of the file uploaded' },
    'part-mb': { type: 'string', placeholder: 'MB', default: '8', description: 'multipart part size' },
    parallel: { type: 'string', placeholder: 'N,N…', default: '1,4', description: 'parts in flight, one multipart variant each' },
  },
  notes: ['Each variant runs in its own process, so its peak RSS is its own. The emulators run in this process and hold\nevery object in memory: allow a few times --size-mb of RAM.'],
  examples: ['npm run bench:upload', 'npm run bench:upload -- --size-mb 50 --parallel 1,2,4'],
  exitCodes: [
    [0, 'measured (the table is on stdout)'],
    [1, 'a variant failed, or stored something other than what was sent'],
    [2, 'a command-line mistake'],
  ],
});

async function main(values: CliValues<typeof benchUploadCli.options>): Promise<number> {
  const sizeMb = positiveNumber('size-mb', values['size-mb']);
  const partSizeBytes = positiveNumber('part-mb', values['part-mb']) * MB;
  const parallels = values.parallel.split(',').map((count) => positiveInteger('parallel', count));

  const work = await mkdtemp(join(tmpdir(), 'bench-upload-'));
  const [oss, cos] = await Promise.all([
    startOssEmulator({ accessKeyId: BENCH_CREDENTIALS.id, accessKeySecret: BENCH_CREDENTIALS.secret }),
    startCosEmulator({ secretId: BENCH_CREDENTIALS.id, secretKey: BENCH_CREDENTIALS.secret }),
  ]);
  try {
    const file = join(work, 'source.bin');
    log(`writing a ${sizeMb} MB source file…`);
    const digest = await writeSource(file, sizeMb * MB);

    const rows: string[][] = [];
    for (const [cloud, emulator] of [['oss', oss], ['cos', cos]] as const) {
      const variants: Array<Pick<Variant, 'source' | 'parallelParts'>> = [
        { source: 'put', parallelParts: 1 },
        ...parallels.map((parallelParts) => ({ source: 'file' as const, parallelParts })),
        ...parallels.map((parallelParts) => ({ source: 'pipe' as const, parallelParts })),
      ];
      for (const { source, parallelParts } of variants) {
        const key = `bench/${source}-${parallelParts}.bin`;
        const label = source === 'put' ? 'single put (file stream)' : `multipart ${source}, ${parallelParts} parallel × ${partSizeBytes / MB} MB`;
        log(`${cloud}: ${label}…`);
        const report = await runVariant({ cloud, endpoint: emulator.endpoint, source, file, key, parallelParts, partSizeBytes });
        const stored = emulator.getObject(BENCH_BUCKETS[cloud], key);
        if (!stored || createHash('sha256').update(stored).digest('hex') !== digest) throw new Error(`${cloud} ${label}: stored object differs`);
        emulator.objects.clear();
        rows.push([
          cloud.toUpperCase(), label, (sizeMb / report.seconds).toFixed(0), (report.rssBeforeKiB / 1024).toFixed(0),
          (report.peakRssKiB / 1024).toFixed(0), ((report.peakRssKiB - report.rssBeforeKiB) / 1024).toFixed(0),
        ]);
      }
    }
    printTable(['cloud', `variant (${sizeMb} MB)`, 'MB/s', 'RSS before MB', 'peak RSS MB', 'peak − before MB'], rows);
    return 0;
  } finally {
    await Promise.all([oss.close(), cos.close()]);
    await rm(work, { recursive: true, force: true });
  }
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  process.stdout.write([line(header), `|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n') + '\n');
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

if (require.main === module) runCli(benchUploadCli, main);
