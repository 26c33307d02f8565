/**
 * One variant of `npm run bench:upload`, in its own process so its peak RSS (VmHWM) is its own.
 *   upload-variant.ts '<json Variant>'
 * Prints one JSON line: seconds spent uploading, RSS before the upload, peak RSS.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { createCosStore } from '../../shared/storage/cos';
import { createOssStore } from '../../shared/storage/oss';
import type { ObjectStore } from '../../shared/storage/types';

export interface Variant {
  cloud: 'oss' | 'cos';
  endpoint: string;
  /** put: one streamed put of the file; file: multipart from the file; pipe: multipart from a stream of unknown length. */
  source: 'put' | 'file' | 'pipe';
  file: string;
  key: string;
  parallelParts: number;
  partSizeBytes: number;
}

export const BENCH_CREDENTIALS = { id: 'bench-ak', secret: 'bench-secret' };
export const BENCH_BUCKETS = { oss: 'bench-bucket', cos: 'bench-1250000000' } as const;

function statusKiB(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(match?.[1] ?? NaN);
}

function createStore(variant: Variant): ObjectStore {
  const multipart = {
    thresholdBytes: variant.source === 'put' ? Number.MAX_SAFE_INTEGER : variant.partSizeBytes,
    partSizeBytes: variant.partSizeBytes,
    parallelParts: variant.parallelParts,
  };
  const timeoutMs = 120_000;
  return variant.cloud === 'oss'
    ? createOssStore({
      bucket: BENCH_BUCKETS.oss, region: 'cn-hangzhou', endpoint: variant.endpoint, timeoutMs, multipart,
      credentials: { accessKeyId: BENCH_CREDENTIALS.id, accessKeySecret: BENCH_CREDENTIALS.secret },
    })
    : createCosStore({
      bucket: BENCH_BUCKETS.cos, region: 'ap-guangzhou', endpoint: variant.endpoint, timeoutMs, multipart,
      credentials: { secretId: BENCH_CREDENTIALS.id, secretKey: BENCH_CREDENTIALS.secret },
    });
}

async function main() {
  const variant = JSON.parse(process.argv[2]!) as Variant;
  const store = createStore(variant);
  const rssBeforeKiB = statusKiB('VmRSS');
  const started = process.hrtime.bigint();
  const result = variant.source === 'pipe'
    ? await store.putStream(variant.key, createReadStream(variant.file))
    : await store.putFile(variant.key, variant.file);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({ seconds, rssBeforeKiB, peakRssKiB: statusKiB('VmHWM'), attempts: result.attempts }) + '\n');
}

// The parent imports the Variant shape and constants from here; only a child runs the upload.
if (require.main === module) void main();
