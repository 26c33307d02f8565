import type OSS from 'ali-oss';
import { isRetryable, StorageError } from '../errors';
import { withRetry, type RetryPolicy } from '../retry';
import type { ObjectStore, PutOptions, PutResult } from './types';

export interface OssCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken?: string;
}

export interface OssStoreOptions {
  bucket: string;
  /** Without the `oss-` prefix, e.g. `cn-hangzhou`. */
  region: string;
  /** Full URL with scheme; from `ossEndpoint()` or an OSS_ENDPOINT override. */
  endpoint: string;
  credentials: OssCredentials;
  /** Per-request timeout. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

/**
 * The internal endpoint is free and faster but reachable only from the same region;
 * an explicit override (tests, private endpoints) wins.
 */
export function ossEndpoint(bucketRegion: string, functionRegion: string | undefined, override?: string): string {
  if (override) return override;
  const internal = functionRegion !== undefined && functionRegion === bucketRegion ? '-internal' : '';
  return `https://oss-${bucketRegion}${internal}.aliyuncs.com`;
}

/** ali-oss is required here, on first use, so a cold start that never uploads never pays for it. */
export function createOssStore(options: OssStoreOptions): ObjectStore {
  const OSSClient = require('ali-oss') as typeof OSS;
  const client = new OSSClient({
    accessKeyId: options.credentials.accessKeyId,
    accessKeySecret: options.credentials.accessKeySecret,
    stsToken: options.credentials.securityToken,
    bucket: options.bucket,
    region: `oss-${options.region}`,
    endpoint: options.endpoint,
    secure: options.endpoint.startsWith('https:'),
    timeout: options.timeoutMs ?? 30_000,
    // ali-oss would retry network errors itself; the shared policy owns retries instead.
    retryMax: 0,
  } as OSS.Options);

  const put = async (key: string, body: string | Buffer, putOptions: PutOptions = {}): Promise<PutResult> => {
    const { value, attempts } = await withRetry(
      async () => {
        try {
          return await client.put(key, body, { mime: putOptions.contentType } as OSS.PutObjectOptions);
        } catch (error) {
          throw toStorageError(options.bucket, key, error);
        }
      },
      { policy: options.retry, signal: putOptions.signal },
    );
    return { key, attempts, etag: (value.res.headers as Record<string, string | undefined>)['etag'] };
  };

  return {
    cloud: 'oss',
    bucket: options.bucket,
    putFile: (key, filePath, putOptions) => put(key, filePath, putOptions),
    putBuffer: (key, body, putOptions) => put(key, body, putOptions),
    objectUrl: (key) => `https://${options.bucket}.oss-${options.region}.aliyuncs.com/${encodeObjectKey(key)}`,
  };
}

/** Encodes each path segment, keeping `/` as the separator. */
export function encodeObjectKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

function toStorageError(bucket: string, key: string, error: unknown): StorageError {
  const e = (error ?? {}) as { status?: number; code?: string; requestId?: string; message?: string; name?: string };
  // ali-oss reports network failures with status -1/-2 and a name such as ConnectionTimeoutError.
  const status = typeof e.status === 'number' && e.status > 0 ? e.status : undefined;
  const networkFailure = e.status === -1 || e.status === -2;
  const retryable = status === undefined ? networkFailure || isRetryable(error) : status >= 500 || status === 429 || status === 408;
  const cloudCode = e.code ?? e.name;
  const message = `OSS put ${bucket}/${key} failed${status ? ` with HTTP ${status}` : ''}${cloudCode ? ` (${cloudCode})` : ''}`;
  return new StorageError({ cloud: 'oss', bucket, key, status, cloudCode, requestId: e.requestId }, message, { cause: error, retryable });
}
