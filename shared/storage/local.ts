import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { StorageError } from '../errors';
import {
  checkAppendLimit, OBJECT_NOT_APPENDABLE, POSITION_NOT_EQUAL_TO_LENGTH,
  type AppendResult, type ObjectInfo, type ObjectStore, type PutResult,
} from './types';

/** Under the store's root: where the markers of appendable objects live, `<bucket>/<key>`. */
export const APPENDABLE_MARKERS_DIR = '.appendable';

/**
 * Stores objects as files under `<root>/<bucket>/<key>`: the embedded default for
 * local runs and the demo. Writes go to a temp name then rename, like an object
 * store's all-or-nothing put.
 *
 * Appendable objects: an object created by `append` has an empty marker file at
 * `<root>/.appendable/<bucket>/<key>`: in a hidden folder that no bucket can be named (bucket names
 * never start with a dot), so no key can collide with it, and nothing that walks a bucket, or lists
 * the root for buckets, sees it. A put removes the marker (before its rename: a crash in between
 * leaves a normal object, which refuses appends, never the reverse). Each append is
 * written to the end of the file and fsynced before it is acknowledged; a crash during one may
 * leave a torn tail, which the next append sees as a position mismatch.
 */
export function createLocalStore(options: { root: string; bucket: string }): ObjectStore {
  const bucketDir = resolve(options.root, options.bucket);
  const markerDir = resolve(options.root, APPENDABLE_MARKERS_DIR, options.bucket);
  /** Appends to one key run one at a time, like the cloud's position check under concurrency. */
  const appending = new Map<string, Promise<unknown>>();

  const pathFor = (key: string): string => {
    const target = resolve(bucketDir, key);
    const inside = relative(bucketDir, target);
    if (key === '' || inside === '' || inside.startsWith('..') || inside.split(sep).includes('..')) {
      throw new StorageError({ cloud: 'local', bucket: options.bucket, key }, `key escapes the bucket directory: ${key}`);
    }
    return target;
  };
  const markerFor = (key: string): string => join(markerDir, relative(bucketDir, pathFor(key)));

  const write = async (key: string, writeTemp: (tempPath: string) => Promise<void>): Promise<PutResult> => {
    const target = pathFor(key);
    await mkdir(dirname(target), { recursive: true });
    const temp = `${target}.${process.pid}.${Date.now()}.partial`;
    await writeTemp(temp);
    // A put replaces an appendable object with a normal one.
    await rm(markerFor(key), { force: true });
    await rename(temp, target);
    return { key, attempts: 1 };
  };

  const head = async (key: string): Promise<ObjectInfo | null> => {
    const size = await sizeOf(pathFor(key));
    if (size === null) return null;
    return { size, appendable: (await sizeOf(markerFor(key))) !== null };
  };

  const appendNow = async (key: string, body: Buffer, position: number): Promise<AppendResult> => {
    const where = { cloud: 'local', bucket: options.bucket, key, operation: 'append' };
    checkAppendLimit(where, position, body.length);
    const target = pathFor(key);
    const info = await head(key);
    if (info && !info.appendable) {
      throw new StorageError({ ...where, cloudCode: OBJECT_NOT_APPENDABLE }, `append to ${options.bucket}/${key} refused: it is a normal object`);
    }
    const size = info?.size ?? 0;
    if (position !== size) {
      throw new StorageError(
        { ...where, cloudCode: POSITION_NOT_EQUAL_TO_LENGTH, nextPosition: size },
        `append to ${options.bucket}/${key} at ${position} refused: the object is ${size} bytes long`,
      );
    }
    if (!info) {
      // The marker first: a crash before the data leaves no object (head is null), never a normal-looking one.
      const marker = markerFor(key);
      await mkdir(dirname(marker), { recursive: true });
      await writeFile(marker, '');
      await mkdir(dirname(target), { recursive: true });
    }
    const file = await open(target, 'a');
    try {
      await file.writeFile(body);
      await file.sync();
    } finally {
      await file.close();
    }
    if (!info) await syncDirectory(dirname(target));
    return { key, nextPosition: size + body.length, attempts: 1 };
  };

  return {
    cloud: 'local',
    bucket: options.bucket,
    putFile: (key, filePath) => write(key, (temp) => copyFile(filePath, temp)),
    putBuffer: (key, body) => write(key, (temp) => writeFile(temp, body)),
    putStream: (key, body) => write(key, (temp) => pipeline(body, createWriteStream(temp))),
    append: (key, body, position) => {
      const previous = appending.get(key) ?? Promise.resolve();
      const next = previous.catch(() => undefined).then(() => appendNow(key, body, position));
      appending.set(key, next);
      void next.catch(() => undefined).finally(() => {
        if (appending.get(key) === next) appending.delete(key);
      });
      return next;
    },
    head: (key) => head(key),
    objectUrl: (key) => pathToFileURL(join(bucketDir, key)).href,
  };
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw error;
  }
}

/** Makes a new file's directory entry durable; not every platform can open a directory for it. */
async function syncDirectory(path: string): Promise<void> {
  try {
    const directory = await open(path, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  } catch {
    // Best effort.
  }
}
