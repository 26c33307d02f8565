/**
 * The function-package zips (scripts/lib/zip.ts over yazl), read back with yauzl: reproducible
 * bytes, Unix modes (bin/ffmpeg executable), contents; and `npm run package`'s zip of a real build.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as yauzl from 'yauzl';
import { ROOT } from '../../scripts/lib/bundle-config';
import { packageFunctions } from '../../scripts/package';
import { collectTree, writeZip } from '../../scripts/lib/zip';

interface ReadEntry {
  name: string;
  /** Permission bits from the external attributes (Unix mode in the high 16 bits). */
  mode: string;
  fileType: 'dir' | 'file' | 'other';
  madeByUnix: boolean;
  modified: string;
  data: Buffer;
}

async function readZip(path: string): Promise<ReadEntry[]> {
  const zip = await yauzl.openPromise(path, { lazyEntries: true });
  const entries: ReadEntry[] = [];
  try {
    for await (const entry of zip.eachEntry()) {
      const unixMode = entry.externalFileAttributes >>> 16;
      const fileType = (unixMode & 0o170000) === 0o040000 ? 'dir' : (unixMode & 0o170000) === 0o100000 ? 'file' : 'other';
      const data = entry.fileName.endsWith('/') ? Buffer.alloc(0) : await buffer(await zip.openReadStreamPromise(entry));
      entries.push({
        name: entry.fileName,
        mode: (unixMode & 0o777).toString(8),
        fileType,
        madeByUnix: entry.versionMadeBy >> 8 === 3,
        // The DOS fields, as written, without a time zone.
        modified: `${entry.lastModFileDate}/${entry.lastModFileTime}`,
        data,
      });
    }
  } finally {
    zip.close();
  }
  return entries;
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'package-zip-'));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('writeZip', () => {
  const ffmpegStandIn = Buffer.from('#!/bin/sh\necho ffmpeg\n');

  async function makeTree(root: string): Promise<void> {
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'node_modules', 'ali-oss'), { recursive: true });
    await writeFile(join(root, 'index.js'), 'exports.handler = async () => 42;\n'.repeat(100));
    await writeFile(join(root, 'node_modules', 'ali-oss', 'index.js'), 'module.exports = {};\n');
    await writeFile(join(root, 'bin', 'ffmpeg'), ffmpegStandIn);
    await chmod(join(root, 'bin', 'ffmpeg'), 0o755);
    await chmod(join(root, 'index.js'), 0o600);
  }

  /** writeZip in a fresh Node process with the given time zone, as on a build machine elsewhere. */
  function zipInProcess(tree: string, out: string, timeZone: string): void {
    const script = `const z = require('./scripts/lib/zip'); z.collectTree(${JSON.stringify(tree)}).then((s) => z.writeZip(${JSON.stringify(out)}, s))`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, env: { ...process.env, TZ: timeZone }, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
  }

  it('writes the same bytes for the same sources, whatever the files\' times and the time zone', async () => {
    const tree = join(work, 'tree');
    await makeTree(tree);
    const first = join(work, 'first.zip');
    const second = join(work, 'second.zip');
    zipInProcess(tree, first, 'UTC');
    // New modification times and another time zone: neither may reach the archive.
    await rm(tree, { recursive: true });
    await makeTree(tree);
    zipInProcess(tree, second, 'Asia/Shanghai');
    const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
    expect(digest(second)).toBe(digest(first));
  });

  it('keeps bin/ffmpeg executable and everything else 0644, sorted, with directories and contents', async () => {
    const tree = join(work, 'modes');
    await makeTree(tree);
    const archive = join(work, 'modes.zip');
    const summary = await writeZip(archive, await collectTree(tree));

    const entries = await readZip(archive);
    expect(entries.map((e) => [e.name, e.fileType, e.mode])).toEqual([
      ['bin/', 'dir', '755'],
      ['bin/ffmpeg', 'file', '755'],
      ['index.js', 'file', '644'],
      ['node_modules/', 'dir', '755'],
      ['node_modules/ali-oss/', 'dir', '755'],
      ['node_modules/ali-oss/index.js', 'file', '644'],
    ]);
    expect(entries.every((e) => e.madeByUnix)).toBe(true);
    // 1980-01-01 00:00 as DOS date/time: (0 << 9 | 1 << 5 | 1) / 0.
    expect(new Set(entries.map((e) => e.modified))).toEqual(new Set(['33/0']));
    expect(entries.find((e) => e.name === 'bin/ffmpeg')!.data).toEqual(ffmpegStandIn);
    expect(entries.find((e) => e.name === 'index.js')!.data.toString()).toBe('exports.handler = async () => 42;\n'.repeat(100));
    expect(summary).toEqual({ bytes: (await readFile(archive)).length, entries: 6, uncompressedBytes: 3_400 + 21 + ffmpegStandIn.length });
  });
});

describe('npm run package (scripts/package.ts)', () => {
  it('zips a built function with index.js at the root and the packaged ffmpeg executable', async () => {
    const [packaged] = await packageFunctions({ outDir: join(work, 'dist'), functions: ['fc-snapshot'], ffmpeg: true });
    expect(packaged!.zip).toBe(join(work, 'dist', 'fc-snapshot.zip'));

    const zip = await yauzl.openPromise(packaged!.zip, { lazyEntries: true });
    const modes = new Map<string, string>();
    try {
      for await (const entry of zip.eachEntry()) modes.set(entry.fileName, ((entry.externalFileAttributes >>> 16) & 0o777).toString(8));
    } finally {
      zip.close();
    }
    expect(modes.get('bin/ffmpeg')).toBe('755');
    expect(modes.get('index.js')).toBe('644');
    expect(modes.get('node_modules/ali-oss/index.js')).toBe('644');
    expect(packaged!.summary.entries).toBe(modes.size);
  });
});
