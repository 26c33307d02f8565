/**
 * `npm run build [-- --no-ffmpeg] [--out DIR]` (`--help` says more): one deployable folder per function.
 *
 *   dist/<fn>/index.js (+ .map)          the handler and the shared core, CommonJS for Node 20
 *   dist/<fn>/node_modules/<sdk>…        each cloud SDK the function uses, pre-bundled into one file,
 *                                        loaded by Node on the code's first `require` of it
 *   dist/<fn>/bin/ffmpeg                 the static ffmpeg (left out with --no-ffmpeg: use the
 *                                        platform's FFmpeg layer, /opt/bin/ffmpeg, or FFMPEG_PATH)
 *   dist/scf-record/image-server.js      the SCF image-function server (`node image-server.js`); it
 *                                        `require`s ./index.js for the handler (bundle-config's extraEntries)
 *   dist/scf-record/room_process.py      the liteav room process, copied as it is (bundle-config's assets)
 *
 * The cloud SDKs are not inlined into index.js: the code `require`s them inside the factories that
 * use them, and keeping them in their own files means a cold start neither runs nor even parses
 * them (inlined, esbuild's lazy `__commonJS` wrappers defer running but V8 still has to scan the
 * code: ~15 ms for ali-oss and ~35 ms for COS + the TRTC client, measured). Importing an SDK at the
 * top of a module instead of `require`-ing it lazily fails the build.
 */
import { copyFile, chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { builtinModules } from 'node:module';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import * as esbuild from 'esbuild';
import { defineCli, runCli, type CliValues } from './lib/cli';
import {
  ALWAYS_EXTERNAL,
  DIST,
  FUNCTION_NAMES,
  FUNCTIONS,
  LAZY_SDK_PACKAGES,
  NODE_TARGET,
  PACKAGED_FFMPEG,
  ROOT,
  type FunctionName,
} from './lib/bundle-config';

export interface BuildOptions {
  /** Where the function folders go; default `dist/`. */
  outDir?: string;
  functions?: FunctionName[];
  /** Copy the static ffmpeg into each package (default true). */
  ffmpeg?: boolean;
  log?: (line: string) => void;
}

export interface VendoredModule {
  /** The specifier the code requires, e.g. `ali-oss`. */
  specifier: string;
  /** Relative to the function folder, e.g. `node_modules/ali-oss/index.js`. */
  file: string;
  bytes: number;
  /** Source files bundled into it, relative to the repository root. */
  inputs: string[];
}

export interface FunctionBuild {
  name: FunctionName;
  /** Absolute path of the function folder (what the descriptor's code path points at). */
  dir: string;
  handlerExport: string;
  indexBytes: number;
  /** Source files bundled into index.js, relative to the repository root. */
  inputs: string[];
  vendored: VendoredModule[];
  /** Programs built beside index.js (FunctionSpec.extraEntries), e.g. `image-server.js`. */
  extraEntries: Array<{ file: string; bytes: number; inputs: string[] }>;
  /** `bin/ffmpeg` when packaged, else null. */
  ffmpeg: string | null;
  /** Modules index.js or a vendored SDK leaves to runtime resolution and the package does not ship. */
  unresolvedAtRuntime: string[];
}

const NO_FFMPEG_MESSAGE =
  'no ffmpeg binary: FFMPEG_PATH is not set, there is no /opt/bin/ffmpeg (the FC/SCF FFmpeg layer) and this ' +
  'package has no bin/ffmpeg (it was built with --no-ffmpeg). Attach the FFmpeg layer, or set FFMPEG_PATH, or ' +
  'package without --no-ffmpeg.';

const lazySdkFilter = new RegExp(`^(${LAZY_SDK_PACKAGES.map((p) => p.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')).join('|')})(/.*)?$`);

/** Marks the cloud SDKs external and records which specifiers the function requires. */
function lazySdks(used: Set<string>): esbuild.Plugin {
  return {
    name: 'lazy-sdks',
    setup(build) {
      build.onResolve({ filter: lazySdkFilter }, (args) => {
        if (args.kind !== 'require-call') {
          return {
            errors: [{ text: `${args.path} is imported by ${args.importer}; cloud SDKs must be require()d inside the factory that uses them, so a cold start does not load them` }],
          };
        }
        used.add(args.path);
        return { path: args.path, external: true };
      });
    },
  };
}

/**
 * @ffmpeg-installer/ffmpeg finds its binary through node_modules paths, which do not exist in a
 * bundle. The package carries bin/ffmpeg instead, which resolveFfmpegPath tries first; if the
 * resolver ever gets as far as the installer, this stub says what is missing.
 */
export const noFfmpegInstaller: esbuild.Plugin = {
  name: 'no-ffmpeg-installer',
  setup(build) {
    build.onResolve({ filter: /^@ffmpeg-installer\/ffmpeg$/ }, () => ({ path: 'ffmpeg-installer', namespace: 'no-ffmpeg-installer' }));
    build.onLoad({ filter: /.*/, namespace: 'no-ffmpeg-installer' }, () => ({ contents: `throw new Error(${JSON.stringify(NO_FFMPEG_MESSAGE)});`, loader: 'js' }));
  },
};

/**
 * Inside one vendored SDK, a module that another vendored specifier names is required by that
 * specifier at runtime instead of being copied in, so both share one instance (room-admin checks
 * `instanceof` the SDK's exception class, which the TRTC client also loads).
 */
function shareVendored(ownSpecifier: string, all: string[]): esbuild.Plugin {
  const others = all.filter((s) => s !== ownSpecifier).map((specifier) => ({ specifier, file: require.resolve(specifier, { paths: [ROOT] }) }));
  return {
    name: 'share-vendored',
    setup(build) {
      for (const other of others) {
        const base = other.file.slice(other.file.lastIndexOf(sep) + 1).replace(/\.js$/, '');
        build.onResolve({ filter: new RegExp(`(^|/)${base.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')}(\\.js)?$`) }, (args) => {
          let resolved: string;
          try {
            resolved = require.resolve(args.path, { paths: [args.resolveDir] });
          } catch {
            return undefined;
          }
          return resolved === other.file ? { path: other.specifier, external: true } : undefined;
        });
      }
    },
  };
}

/**
 * In an extra entry, an import of the function's own entry becomes `require('./index.js')`, so the
 * handler and the core exist once in the folder (and load as they do for the platform).
 */
function requireMainEntry(mainEntry: string): esbuild.Plugin {
  const target = mainEntry.replace(/\.ts$/, '');
  return {
    name: 'require-main-entry',
    setup(build) {
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        const resolved = resolve(args.resolveDir, args.path).replace(/\.ts$/, '');
        return resolved === target || join(resolved, 'index') === target ? { path: './index.js', external: true } : undefined;
      });
    },
  };
}

/** The esbuild options every bundle of this project uses (the cold-start benchmark's eager variants too). */
export const BUNDLE_OPTIONS: esbuild.BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: NODE_TARGET,
  sourcemap: true,
  // The map's mappings are enough for stack traces (node --enable-source-maps); the sources are in the repository.
  sourcesContent: false,
  metafile: true,
  logLevel: 'warning',
  absWorkingDir: ROOT,
};

/** `ali-oss` → `node_modules/ali-oss/index.js`; `pkg/deep/file` → `node_modules/pkg/deep/file.js`. */
function vendoredPath(specifier: string): string {
  const parts = specifier.split('/');
  const packageParts = specifier.startsWith('@') ? 2 : 1;
  return parts.length === packageParts ? join('node_modules', specifier, 'index.js') : join('node_modules', `${specifier}.js`);
}

function packageNameOf(specifier: string): string {
  return specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
}

function inputsOf(metafile: esbuild.Metafile): string[] {
  return Object.keys(metafile.inputs).filter((input) => !input.includes(':'));
}

function unresolvedOf(metafile: esbuild.Metafile, vendored: Set<string>): string[] {
  const found = new Set<string>();
  for (const output of Object.values(metafile.outputs)) {
    for (const imported of output.imports) {
      const shipped = vendored.has(imported.path) || imported.path.startsWith('./');
      if (imported.external && !imported.path.startsWith('node:') && !isBuiltin(imported.path) && !shipped) found.add(imported.path);
    }
  }
  return [...found].sort();
}

function isBuiltin(name: string): boolean {
  return builtinModules.includes(name);
}

async function buildOne(name: FunctionName, outDir: string, withFfmpeg: boolean): Promise<FunctionBuild> {
  const spec = FUNCTIONS[name];
  const dir = join(outDir, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });

  const used = new Set<string>();
  const main = await esbuild.build({
    ...BUNDLE_OPTIONS,
    entryPoints: [join(ROOT, spec.entry)],
    outfile: join(dir, 'index.js'),
    external: ALWAYS_EXTERNAL,
    plugins: [lazySdks(used), noFfmpegInstaller],
  });
  const extraBuilds: Array<{ file: string; metafile: esbuild.Metafile }> = [];
  for (const extra of spec.extraEntries ?? []) {
    const result = await esbuild.build({
      ...BUNDLE_OPTIONS,
      entryPoints: [join(ROOT, extra.entry)],
      outfile: join(dir, extra.outfile),
      external: ALWAYS_EXTERNAL,
      plugins: [requireMainEntry(join(ROOT, spec.entry)), lazySdks(used), noFfmpegInstaller],
    });
    extraBuilds.push({ file: extra.outfile, metafile: result.metafile! });
  }

  const specifiers = [...used].sort();
  const vendored: VendoredModule[] = [];
  const unresolved = new Set(unresolvedOf(main.metafile!, used));
  for (const extra of extraBuilds) for (const u of unresolvedOf(extra.metafile, used)) unresolved.add(u);
  for (const specifier of specifiers) {
    const file = vendoredPath(specifier);
    const result = await esbuild.build({
      ...BUNDLE_OPTIONS,
      entryPoints: [require.resolve(specifier, { paths: [ROOT] })],
      outfile: join(dir, file),
      external: ALWAYS_EXTERNAL,
      plugins: [shareVendored(specifier, specifiers)],
    });
    for (const u of unresolvedOf(result.metafile!, used)) unresolved.add(u);
    vendored.push({ specifier, file, bytes: (await stat(join(dir, file))).size, inputs: inputsOf(result.metafile!) });
  }
  // Name and version of what was vendored, for whoever inspects a deployed package.
  for (const pkg of new Set(specifiers.map(packageNameOf))) {
    const manifest = require(require.resolve(`${pkg}/package.json`, { paths: [ROOT] })) as { name: string; version: string; license?: string };
    await writeFile(
      join(dir, 'node_modules', pkg, 'package.json'),
      JSON.stringify({ name: manifest.name, version: manifest.version, license: manifest.license, description: 'pre-bundled by scripts/build.ts' }, null, 2) + '\n',
    );
  }

  for (const asset of spec.assets ?? []) await copyFile(join(ROOT, asset), join(dir, basename(asset)));

  let ffmpeg: string | null = null;
  if (withFfmpeg) {
    const source = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
    const target = join(dir, PACKAGED_FFMPEG);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(source, target, fsConstants.COPYFILE_FICLONE);
    // The zip keeps this mode; the platforms' code directories are read-only, so it must be set here.
    await chmod(target, 0o755);
    ffmpeg = PACKAGED_FFMPEG;
  }

  const build: FunctionBuild = {
    name,
    dir,
    handlerExport: spec.handlerExport,
    indexBytes: (await stat(join(dir, 'index.js'))).size,
    inputs: inputsOf(main.metafile!),
    vendored,
    extraEntries: await Promise.all(
      extraBuilds.map(async (e) => ({ file: e.file, bytes: (await stat(join(dir, e.file))).size, inputs: inputsOf(e.metafile) })),
    ),
    ffmpeg,
    unresolvedAtRuntime: [...unresolved].sort(),
  };
  // The metafiles, for `esbuild --analyze`-style inspection; outside the package folder.
  await writeFile(join(outDir, `${name}.meta.json`), JSON.stringify({ bundle: main.metafile, vendored: Object.fromEntries(vendored.map((v) => [v.specifier, v.inputs])) }));
  return build;
}

export async function buildFunctions(options: BuildOptions = {}): Promise<FunctionBuild[]> {
  const outDir = options.outDir ?? DIST;
  const names = options.functions ?? FUNCTION_NAMES;
  const builds: FunctionBuild[] = [];
  for (const name of names) builds.push(await buildOne(name, outDir, options.ffmpeg ?? true));
  const log = options.log;
  if (log) for (const b of builds) log(describeBuild(b));
  return builds;
}

export function describeBuild(b: FunctionBuild): string {
  const kib = (n: number) => `${Math.round(n / 1024)} KiB`;
  const lines = [`${relative(ROOT, b.dir) || b.dir}: index.js ${kib(b.indexBytes)} (exports ${b.handlerExport})`];
  for (const v of b.vendored) lines.push(`  lazy  ${v.file} ${kib(v.bytes)}  ← require('${v.specifier}')`);
  for (const e of b.extraEntries) lines.push(`  also  ${e.file} ${kib(e.bytes)}  (node ${e.file}; requires ./index.js)`);
  lines.push(`  ffmpeg ${b.ffmpeg ?? 'not packaged (FFmpeg layer or FFMPEG_PATH)'}`);
  if (b.unresolvedAtRuntime.length) lines.push(`  left to runtime: ${b.unresolvedAtRuntime.join(', ')}`);
  return lines.join('\n');
}

/** What `npm run build` and `npm run package` both take. */
export const BUILD_OPTIONS = {
  'no-ffmpeg': { type: 'boolean', description: 'leave bin/ffmpeg out (the function uses the FFmpeg layer, /opt/bin/ffmpeg, or FFMPEG_PATH)' },
  out: { type: 'string', placeholder: 'DIR', description: 'where the function folders (and zips) go (default: dist)' },
} as const;

export const buildCli = defineCli({
  name: 'build',
  summary: 'Bundles each function into its own deployable folder: dist/fc-snapshot/, dist/scf-record/ (what s deploy and scf deploy upload).',
  options: BUILD_OPTIONS,
  notes: ['Each folder: index.js (+ map), each cloud SDK pre-bundled under node_modules/, bin/ffmpeg unless --no-ffmpeg;\nscf-record also image-server.js. Build and deploy with the same --no-ffmpeg choice.'],
  examples: ['npm run build', 'npm run build -- --no-ffmpeg --out /tmp/functions'],
  exitCodes: [
    [0, 'built'],
    [1, 'the build failed'],
    [2, 'a command-line mistake'],
  ],
});

async function main(values: CliValues<typeof buildCli.options>): Promise<number> {
  await buildFunctions({ outDir: values.out, ffmpeg: !values['no-ffmpeg'], log: (line) => process.stdout.write(line + '\n') });
  return 0;
}

if (require.main === module) runCli(buildCli, main);
