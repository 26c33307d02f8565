/**
 * `npm run package [-- --no-ffmpeg] [--out DIR]`: builds each function (scripts/build.ts) and
 * writes one deployable zip per function, `dist/fc-snapshot.zip` and `dist/scf-record.zip`, with
 * index.js at the zip's root (what `index.handler` / `index.main_handler` name).
 *
 * ffmpeg is included by default (bin/ffmpeg, mode 0755). `--no-ffmpeg` leaves it out, for functions
 * that attach the platform's FFmpeg layer (/opt/bin/ffmpeg) or set FFMPEG_PATH; it also leaves it out
 * of dist/<fn>/, so `s deploy` / `sls deploy` (which upload those folders) match the zips.
 */
import { join, relative } from 'node:path';
import { BUILD_OPTIONS, buildFunctions, describeBuild, type BuildOptions, type FunctionBuild } from './build';
import { defineCli, runCli, type CliValues } from './lib/cli';
import { DIST, ROOT } from './lib/bundle-config';
import { collectTree, writeZip, type ZipSummary } from './lib/zip';

export interface PackagedFunction {
  build: FunctionBuild;
  zip: string;
  summary: ZipSummary;
}

export async function packageFunctions(options: BuildOptions = {}): Promise<PackagedFunction[]> {
  const outDir = options.outDir ?? DIST;
  const builds = await buildFunctions({ ...options, outDir });
  const packaged: PackagedFunction[] = [];
  for (const build of builds) {
    const zip = join(outDir, `${build.name}.zip`);
    const summary = await writeZip(zip, await collectTree(build.dir));
    packaged.push({ build, zip, summary });
  }
  return packaged;
}

export function formatMiB(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

export const packageCli = defineCli({
  name: 'package',
  summary: 'Builds each function (npm run build) and zips it for upload: dist/fc-snapshot.zip, dist/scf-record.zip.',
  options: BUILD_OPTIONS,
  examples: ['npm run package', 'npm run package -- --no-ffmpeg --out /tmp/packages'],
  exitCodes: [
    [0, 'packaged'],
    [1, 'the build or the zip failed'],
    [2, 'a command-line mistake'],
  ],
});

async function main(values: CliValues<typeof packageCli.options>): Promise<number> {
  const packaged = await packageFunctions({ outDir: values.out, ffmpeg: !values['no-ffmpeg'] });
  for (const p of packaged) {
    process.stdout.write(`${describeBuild(p.build)}\n`);
    process.stdout.write(
      `  → ${relative(ROOT, p.zip) || p.zip}: ${formatMiB(p.summary.bytes)} (${p.summary.entries} entries, ${formatMiB(p.summary.uncompressedBytes)} unpacked)\n`,
    );
  }
  return 0;
}

if (require.main === module) runCli(packageCli, main);
