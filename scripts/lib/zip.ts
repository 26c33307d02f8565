/**
 * Function-package zips through yazl: no `zip` binary needed on a fresh clone.
 *
 * - Unix modes are recorded (yazl writes "version made by" Unix and the mode in the external
 *   attributes), so bin/ffmpeg stays executable once FC or SCF unpacks the code into a read-only
 *   directory.
 * - Output is reproducible: entries in sorted order, every timestamp 1980-01-01 00:00 (the DOS
 *   epoch) without yazl's extended-timestamp field, whose UTC seconds would follow the machine's
 *   time zone. The same inputs give the same bytes (and the same code checksum) on any machine.
 */
import { createWriteStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ZipFile } from 'yazl';

export interface ZipSource {
  /** Path inside the archive, `/`-separated; directories end with `/`. */
  name: string;
  /** File on disk; absent for a directory entry. */
  file?: string;
  mode: number;
}

export interface ZipSummary {
  bytes: number;
  entries: number;
  /** Sum of the files' uncompressed sizes. */
  uncompressedBytes: number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/** Every directory and file under `root`, directories first, each level sorted by name. */
export async function collectTree(root: string): Promise<ZipSource[]> {
  const sources: ZipSource[] = [];
  const walk = async (dir: string) => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const path = join(dir, name);
      const info = await stat(path);
      const inArchive = relative(root, path).split(sep).join(posix.sep);
      if (info.isDirectory()) {
        sources.push({ name: `${inArchive}/`, mode: 0o755 });
        await walk(path);
      } else if (info.isFile()) {
        // Executable stays executable (0755); everything else is 0644.
        sources.push({ name: inArchive, file: path, mode: info.mode & 0o111 ? 0o755 : 0o644 });
      }
    }
  };
  await walk(root);
  return sources;
}

/** Writes `sources` in the order given (collectTree's order is sorted). */
export async function writeZip(outFile: string, sources: ZipSource[], options: { level?: number } = {}): Promise<ZipSummary> {
  const zip = new ZipFile();
  // Local midnight on purpose, made per call: yazl writes the DOS date and time with local-time
  // getters, so this reads 1980-01-01 00:00 in whatever time zone is in force.
  const mtime = new Date(1980, 0, 1, 0, 0, 0);
  let uncompressedBytes = 0;
  for (const source of sources) {
    if (source.name.endsWith('/')) {
      zip.addEmptyDirectory(source.name, { mtime, mode: S_IFDIR | (source.mode & 0o777), forceDosTimestamp: true });
      continue;
    }
    if (source.file === undefined) throw new Error(`zip: ${source.name} has no file`);
    uncompressedBytes += (await stat(source.file)).size;
    zip.addFile(source.file, source.name, {
      mtime,
      mode: S_IFREG | (source.mode & 0o777),
      forceDosTimestamp: true,
      compressionLevel: options.level ?? 6,
    });
  }
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(outFile));
  return { bytes: (await stat(outFile)).size, entries: sources.length, uncompressedBytes };
}
