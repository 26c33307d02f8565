/**
 * A small zip writer (deflate via node:zlib, CRC-32, central directory), enough for function
 * packages: no dependency, no `zip` binary needed on a fresh clone.
 *
 * - Unix modes are recorded (version made by = Unix, mode in the external attributes), so
 *   bin/ffmpeg stays executable once FC or SCF unpacks the code into a read-only directory.
 * - Output is reproducible: entries in sorted order, every timestamp the DOS epoch
 *   (1980-01-01 00:00), so the same inputs always give the same bytes (and the same code checksum).
 * - No zip64: each file and the archive must stay under 4 GiB, and under 65535 entries.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import * as zlib from 'node:zlib';

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

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const VERSION_NEEDED = 20; // 2.0: deflate, directories
const VERSION_MADE_BY_UNIX = (3 << 8) | VERSION_NEEDED;
const FLAG_UTF8_NAMES = 0x0800;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
const DOS_EPOCH_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01
const DOS_EPOCH_TIME = 0;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const MSDOS_DIRECTORY = 0x10;
const MAX_32 = 0xffffffff;

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** zlib.crc32 where Node has it (20.15+), else a table-driven CRC-32. */
export function crc32(data: Buffer): number {
  const native = (zlib as { crc32?: (data: Buffer) => number }).crc32;
  if (native) return native(data) >>> 0;
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

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

export async function writeZip(outFile: string, sources: ZipSource[], options: { level?: number } = {}): Promise<ZipSummary> {
  if (sources.length >= 0xffff) throw new Error(`zip: ${sources.length} entries need zip64, which this writer does not do`);
  const out = await open(outFile, 'w');
  const central: Buffer[] = [];
  let offset = 0;
  let uncompressedBytes = 0;
  const write = async (buffer: Buffer) => {
    await out.write(buffer);
    offset += buffer.length;
  };
  try {
    for (const source of sources) {
      const isDirectory = source.name.endsWith('/');
      const data = isDirectory ? Buffer.alloc(0) : await readFile(source.file!);
      const crc = isDirectory ? 0 : crc32(data);
      const deflated = isDirectory ? data : zlib.deflateRawSync(data, { level: options.level ?? 6 });
      const stored = isDirectory || deflated.length >= data.length;
      const body = stored ? data : deflated;
      const method = stored ? METHOD_STORED : METHOD_DEFLATE;
      if (data.length > MAX_32 || offset > MAX_32) throw new Error(`zip: ${source.name} needs zip64, which this writer does not do`);
      const name = Buffer.from(source.name, 'utf8');
      const localOffset = offset;

      const local = Buffer.alloc(30);
      local.writeUInt32LE(LOCAL_HEADER, 0);
      local.writeUInt16LE(VERSION_NEEDED, 4);
      local.writeUInt16LE(FLAG_UTF8_NAMES, 6);
      local.writeUInt16LE(method, 8);
      local.writeUInt16LE(DOS_EPOCH_TIME, 10);
      local.writeUInt16LE(DOS_EPOCH_DATE, 12);
      local.writeUInt32LE(crc, 14);
      local.writeUInt32LE(body.length, 18);
      local.writeUInt32LE(data.length, 22);
      local.writeUInt16LE(name.length, 26);
      local.writeUInt16LE(0, 28);
      await write(local);
      await write(name);
      await write(body);

      const entry = Buffer.alloc(46);
      entry.writeUInt32LE(CENTRAL_HEADER, 0);
      entry.writeUInt16LE(VERSION_MADE_BY_UNIX, 4);
      entry.writeUInt16LE(VERSION_NEEDED, 6);
      entry.writeUInt16LE(FLAG_UTF8_NAMES, 8);
      entry.writeUInt16LE(method, 10);
      entry.writeUInt16LE(DOS_EPOCH_TIME, 12);
      entry.writeUInt16LE(DOS_EPOCH_DATE, 14);
      entry.writeUInt32LE(crc, 16);
      entry.writeUInt32LE(body.length, 20);
      entry.writeUInt32LE(data.length, 24);
      entry.writeUInt16LE(name.length, 28);
      // extra length, comment length, disk number start, internal attributes: 0
      const unixMode = (isDirectory ? S_IFDIR : S_IFREG) | (source.mode & 0o777);
      entry.writeUInt32LE(((unixMode << 16) | (isDirectory ? MSDOS_DIRECTORY : 0)) >>> 0, 38);
      entry.writeUInt32LE(localOffset, 42);
      central.push(entry, name);
      uncompressedBytes += data.length;
    }
    const centralOffset = offset;
    const centralDirectory = Buffer.concat(central);
    await write(centralDirectory);
    if (offset > MAX_32) throw new Error('zip: the archive needs zip64, which this writer does not do');
    const end = Buffer.alloc(22);
    end.writeUInt32LE(END_OF_CENTRAL_DIRECTORY, 0);
    // disk numbers: 0
    end.writeUInt16LE(sources.length, 8);
    end.writeUInt16LE(sources.length, 10);
    end.writeUInt32LE(centralDirectory.length, 12);
    end.writeUInt32LE(centralOffset, 16);
    // comment length: 0
    await write(end);
  } finally {
    await out.close();
  }
  return { bytes: offset, entries: sources.length, uncompressedBytes };
}

export interface ZipEntryRead {
  name: string;
  mode: number;
  data: Buffer;
}

/** Reads back what writeZip writes (stored and deflate, no zip64), checking every CRC; for tests. */
export function readZip(archive: Buffer): ZipEntryRead[] {
  const endAt = archive.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (endAt < 0) throw new Error('zip: no end of central directory');
  const count = archive.readUInt16LE(endAt + 10);
  let at = archive.readUInt32LE(endAt + 16);
  const entries: ZipEntryRead[] = [];
  for (let i = 0; i < count; i++) {
    if (archive.readUInt32LE(at) !== CENTRAL_HEADER) throw new Error(`zip: bad central header ${i}`);
    const method = archive.readUInt16LE(at + 10);
    const crc = archive.readUInt32LE(at + 16);
    const compressed = archive.readUInt32LE(at + 20);
    const nameLength = archive.readUInt16LE(at + 28);
    const extraLength = archive.readUInt16LE(at + 30);
    const commentLength = archive.readUInt16LE(at + 32);
    const mode = archive.readUInt32LE(at + 38) >>> 16;
    const localAt = archive.readUInt32LE(at + 42);
    const name = archive.toString('utf8', at + 46, at + 46 + nameLength);
    if (archive.readUInt32LE(localAt) !== LOCAL_HEADER) throw new Error(`zip: bad local header for ${name}`);
    const dataAt = localAt + 30 + archive.readUInt16LE(localAt + 26) + archive.readUInt16LE(localAt + 28);
    const body = archive.subarray(dataAt, dataAt + compressed);
    const data = method === METHOD_DEFLATE ? zlib.inflateRawSync(body) : Buffer.from(body);
    if (crc32(data) !== crc) throw new Error(`zip: CRC mismatch for ${name}`);
    entries.push({ name, mode, data });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}
