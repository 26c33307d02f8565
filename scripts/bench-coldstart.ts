/**
 * `npm run bench:coldstart [-- --samples 15]` (`--help`): how long a cold start spends loading each function.
 *
 * Each sample is a fresh Node process that `require`s a built index.js, as FC and SCF do, timed
 * inside the process (Node's own start-up is the same for every variant and left out). Variants,
 * all built with the same esbuild options into a temporary folder outside the repository:
 *   - lazy: the shipped package (scripts/build.ts); SDKs load on first use. The same process then
 *     requires every SDK file the package ships, which is what the first cloud calls add on top
 *     ("+ its SDKs loaded").
 *   - eager, own SDKs: the same function with the SDKs its code uses required at the top
 *     (fc-snapshot: ali-oss; scf-record: cos-nodejs-sdk-v5 and the whole tencentcloud-sdk-nodejs).
 *   - eager, all SDKs: the same function with ali-oss, cos-nodejs-sdk-v5 and the whole
 *     tencentcloud-sdk-nodejs required at the top, as a core that imports every driver would.
 * Target: lazy under a quarter of "eager, all SDKs". Samples alternate between variants, so
 * machine noise spreads over all of them; medians are reported. Also packages both zips, with and
 * without ffmpeg, and reports their sizes. Exits 1 when a target is missed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { BUNDLE_OPTIONS, buildFunctions, noFfmpegInstaller } from './build';
import { ALWAYS_EXTERNAL, FUNCTION_NAMES, FUNCTIONS, LAZY_SDK_PACKAGES, ROOT, type FunctionName } from './lib/bundle-config';
import { probeBundle } from './lib/bundle-probe';
import { defineCli, positiveInteger, runCli, type CliValues } from './lib/cli';
import { formatMiB, packageFunctions } from './package';

const TARGET_RATIO = 0.25;

interface Variant {
  fn: FunctionName;
  kind: 'lazy' | 'eager-own' | 'eager-all';
  dir: string;
  thenRequire?: string[];
  requireMs: number[];
  firstUseMs: number[];
}

/** The function with `sdks` required before anything else, SDKs inlined, same options as the real build. */
async function buildEager(fn: FunctionName, sdks: string[], dir: string): Promise<void> {
  const prelude = sdks.map((sdk) => `require(${JSON.stringify(sdk)});`).join('\n');
  await esbuild.build({
    ...BUNDLE_OPTIONS,
    stdin: { contents: `${prelude}\nmodule.exports = require(${JSON.stringify(`./${FUNCTIONS[fn].entry}`)});\n`, resolveDir: ROOT, sourcefile: `${fn}-eager.js`, loader: 'js' },
    outfile: join(dir, 'index.js'),
    external: ALWAYS_EXTERNAL,
    plugins: [noFfmpegInstaller],
    logLevel: 'error',
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const ms = (value: number) => `${value.toFixed(0)} ms`;

export const benchColdstartCli = defineCli({
  name: 'bench:coldstart',
  summary: 'Times how long a cold start spends loading each built function, lazy (shipped) against eager SDK loading, and sizes the zips.',
  options: {
    samples: { type: 'string', placeholder: 'N', default: '15', description: 'fresh Node processes per variant (the median is reported)' },
  },
  notes: ['Builds every variant into a temporary folder (never dist/); samples alternate between variants.'],
  examples: ['npm run bench:coldstart', 'npm run bench:coldstart -- --samples 5'],
  exitCodes: [
    [0, 'measured, and lazy loading is under a quarter of eager (all SDKs) for each function'],
    [1, 'that target missed, or the benchmark failed'],
    [2, 'a command-line mistake'],
  ],
});

async function main(values: CliValues<typeof benchColdstartCli.options>): Promise<number> {
  const samples = positiveInteger('samples', values.samples);
  const work = await mkdtemp(join(tmpdir(), 'coldstart-'));
  try {
    const lazyBuilds = await buildFunctions({ outDir: join(work, 'lazy'), ffmpeg: false });
    const variants: Variant[] = [];
    for (const build of lazyBuilds) {
      variants.push({ fn: build.name, kind: 'lazy', dir: build.dir, thenRequire: build.vendored.map((v) => v.file), requireMs: [], firstUseMs: [] });
      const own = join(work, 'eager-own', build.name);
      const all = join(work, 'eager-all', build.name);
      await buildEager(build.name, FUNCTIONS[build.name].ownSdks, own);
      await buildEager(build.name, LAZY_SDK_PACKAGES, all);
      variants.push({ fn: build.name, kind: 'eager-own', dir: own, requireMs: [], firstUseMs: [] });
      variants.push({ fn: build.name, kind: 'eager-all', dir: all, requireMs: [], firstUseMs: [] });
    }

    process.stderr.write(`sampling ${variants.length} variants × ${samples}`);
    for (let i = 0; i < samples; i++) {
      for (const variant of variants) {
        const report = await probeBundle({ dir: variant.dir, handlerExport: FUNCTIONS[variant.fn].handlerExport, thenRequire: variant.thenRequire });
        if (report.handlerType !== 'function') throw new Error(`${variant.kind} ${variant.fn}: ${FUNCTIONS[variant.fn].handlerExport} is ${report.handlerType}`);
        variant.requireMs.push(report.requireMs);
        variant.firstUseMs.push(report.requireMs + (report.thenRequireMs ?? 0));
      }
      process.stderr.write('.');
    }
    process.stderr.write('\n');

    const withFfmpeg = await packageFunctions({ outDir: join(work, 'zip-ffmpeg'), ffmpeg: true });
    const withoutFfmpeg = await packageFunctions({ outDir: join(work, 'zip-no-ffmpeg'), ffmpeg: false });

    const cpu = cpus();
    const lines: string[] = [];
    lines.push(
      `cold start, ${new Date().toISOString().slice(0, 10)}: median of ${samples} fresh \`node\` processes per variant, time to \`require\` index.js ` +
        `(node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? 'cpu'})`,
      '',
      '| function | lazy (shipped) | + its SDKs loaded | eager, own SDKs | lazy ÷ eager | eager, all SDKs | lazy ÷ eager | target: lazy < ¼ of eager, all SDKs |',
      '|---|---:|---:|---:|---:|---:|---:|---|',
    );
    let missed = false;
    for (const fn of FUNCTION_NAMES) {
      const get = (kind: Variant['kind']) => variants.find((v) => v.fn === fn && v.kind === kind)!;
      const lazy = median(get('lazy').requireMs);
      const firstUse = median(get('lazy').firstUseMs);
      const own = median(get('eager-own').requireMs);
      const all = median(get('eager-all').requireMs);
      const met = lazy < all * TARGET_RATIO;
      missed ||= !met;
      lines.push(
        `| ${fn} | ${ms(lazy)} | ${ms(firstUse)} | ${ms(own)} | ${(lazy / own).toFixed(2)} | ${ms(all)} | ${(lazy / all).toFixed(2)} | ${met ? 'met' : 'MISSED'} |`,
      );
    }
    lines.push(
      '',
      'own SDKs: fc-snapshot ali-oss; scf-record cos-nodejs-sdk-v5 + the whole tencentcloud-sdk-nodejs. ' +
        'all SDKs: ali-oss + cos-nodejs-sdk-v5 + the whole tencentcloud-sdk-nodejs. ' +
        '"+ its SDKs loaded": the lazy package, then every SDK file it ships (a Record request loads only COS, a Stop request only the TRTC client).',
      '',
      '| package | with ffmpeg (default) | `--no-ffmpeg` |',
      '|---|---:|---:|',
    );
    for (const p of withFfmpeg) {
      const without = withoutFfmpeg.find((q) => q.build.name === p.build.name)!;
      lines.push(`| ${p.build.name}.zip | ${formatMiB(p.summary.bytes)} | ${formatMiB(without.summary.bytes)} |`);
    }
    process.stdout.write(lines.join('\n') + '\n');
    if (missed) process.stderr.write('cold start target missed\n');
    return missed ? 1 : 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (require.main === module) runCli(benchColdstartCli, main);
