import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { StorageError } from '../errors';
import type { ObjectStore, PutResult } from './types';

/**
 * Stores objects as files under `<root>/<bucket>/<key>`: the embedded default for
 * local runs and the demo. Writes go to a temp name then rename, like an object
 * store's all-or-nothing put.
 */
export function createLocalStore(options: { root: string; bucket: string }): ObjectStore {
  const bucketDir = resolve(options.root, options.bucket);

  const pathFor = (key: string): string => {
    const target = resolve(bucketDir, key);
    const inside = relative(bucketDir, target);
    if (key === '' || inside === '' || inside.startsWith('..') || inside.split(sep).includes('..')) {
      throw new StorageError({ cloud: 'local', bucket: options.bucket, key }, `key escapes the bucket directory: ${key}`);
    }
    return target;
  };

  const write = async (key: string, writeTemp: (tempPath: string) => Promise<void>): Promise<PutResult> => {
    const target = pathFor(key);
    await mkdir(dirname(target), { recursive: true });
    const temp = `${target}.${process.pid}.${Date.now()}.partial`;
    await writeTemp(temp);
    await rename(temp, target);
    return { key, attempts: 1 };
  };

  return {
    cloud: 'local',
    bucket: options.bucket,
    putFile: (key, filePath) => write(key, (temp) => copyFile(filePath, temp)),
    putBuffer: (key, body) => write(key, (temp) => writeFile(temp, body)),
    putStream: (key, body) => write(key, (temp) => pipeline(body, createWriteStream(temp))),
    objectUrl: (key) => pathToFileURL(join(bucketDir, key)).href,
  };
}
