import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { StorageError } from '../errors';
import { withRetry, type RetryPolicy } from '../retry';
import { putFileInParts, putStreamInParts, resolveMultipartOptions, type MultipartOptions, type Send } from './multipart';
import {
  checkAppendLimit, OBJECT_NOT_APPENDABLE, POSITION_NOT_EQUAL_TO_LENGTH,
  type AppendResult, type CloudClient, type FileRange, type ObjectStore, type PutOptions,
} from './types';

/** What an SDK error says about a failed request, read off whatever shape the SDK threw. */
export interface SdkFailure {
  /** The HTTP status, when an answer came back. */
  status?: number;
  cloudCode?: string;
  requestId?: string;
  /** No answer came back (reset, timeout, refused): another attempt may get one. */
  noResponse: boolean;
  /** From a 409 PositionNotEqualToLength: the next-append-position header. */
  nextPosition?: number;
}

/** The per-cloud part of a store: an SDK client factory, error reading and URLs. */
export interface CloudDriver<C> {
  cloud: 'oss' | 'cos';
  bucket: string;
  connect(credentials: C): CloudClient;
  describeFailure(error: unknown): SdkFailure;
  /** The code the cloud answers when an STS token has expired. */
  expiredTokenCode: string;
  objectUrl(key: string): string;
}

export interface CloudStoreOptions<C> {
  credentials: C;
  /**
   * Called when the cloud says the STS token has expired (once, however many requests saw it);
   * those requests are then retried with the new credentials.
   */
  refreshCredentials?: () => Promise<C>;
  retry?: Partial<RetryPolicy>;
  multipart?: Partial<MultipartOptions>;
}

const CLOUD_LABELS = { oss: 'OSS', cos: 'COS' } as const;

/**
 * The store both cloud drivers share: retries under the one shared policy, STS refresh,
 * StorageError typing, and the choice between a single put and a multipart upload.
 */
export function createCloudStore<C>(driver: CloudDriver<C>, options: CloudStoreOptions<C>): ObjectStore {
  const multipart = resolveMultipartOptions(options.multipart);
  let session = { client: driver.connect(options.credentials), generation: 0 };
  let refreshing: Promise<void> | undefined;

  /** Renews the client unless another request already did since `generation` was current. */
  const renewSession = async (generation: number, refresh: () => Promise<C>): Promise<void> => {
    if (session.generation !== generation) return;
    refreshing ??= refresh()
      .then((credentials) => {
        session = { client: driver.connect(credentials), generation: generation + 1 };
      })
      .finally(() => {
        refreshing = undefined;
      });
    await refreshing;
  };

  const sender = (key: string, putOptions: PutOptions): Send => (operation, call) => {
    const { signal } = putOptions;
    let refreshed = false;
    let lastFailure: StorageError | undefined;
    return withRetry(
      async (attempt) => {
        // withRetry's wait ends early on abort, but it would still start one more attempt.
        if (attempt > 1 && signal?.aborted && lastFailure) throw lastFailure;
        const { client, generation } = session;
        try {
          return await call(client);
        } catch (error) {
          // A call may throw a StorageError of its own (an append's resync does).
          const failure = error instanceof StorageError ? error : toStorageError(driver, operation, key, error);
          lastFailure = failure;
          const refresh = options.refreshCredentials;
          if (failure.detail.cloudCode !== driver.expiredTokenCode || !refresh || refreshed) throw failure;
          refreshed = true;
          try {
            await renewSession(generation, refresh);
          } catch (refreshError) {
            throw new StorageError(failure.detail, `${failure.message}; refreshing credentials failed`, { cause: refreshError });
          }
          throw new StorageError(failure.detail, failure.message, { cause: error, retryable: true });
        }
      },
      { policy: { ...options.retry, ...putOptions.retry }, signal },
    );
  };

  const supported = <M extends 'append' | 'head'>(client: CloudClient, method: M, key: string): NonNullable<CloudClient[M]> => {
    const call = client[method];
    if (!call) throw new StorageError({ cloud: driver.cloud, bucket: driver.bucket, key, operation: method }, `${CLOUD_LABELS[driver.cloud]} client has no ${method}`);
    return call as NonNullable<CloudClient[M]>;
  };

  /** Failures outside any request (a source stream that errors, too many parts) are typed here. */
  const typed = async <T>(key: string, upload: () => Promise<T>): Promise<T> => {
    try {
      return await upload();
    } catch (error) {
      if (error instanceof StorageError) throw error;
      const message = `${CLOUD_LABELS[driver.cloud]} upload of ${driver.bucket}/${key} failed: ${error instanceof Error ? error.message : String(error)}`;
      throw new StorageError({ cloud: driver.cloud, bucket: driver.bucket, key }, message, { cause: error });
    }
  };

  const putBuffer = async (key: string, body: Buffer, putOptions: PutOptions = {}) => {
    const send = sender(key, putOptions);
    const { value, attempts } = await send('put', (client) => client.put(key, body, putOptions.contentType));
    return { key, attempts, etag: value.etag };
  };

  /**
   * One append under the retry policy. A request that got no answer may still have been applied,
   * so it is never resent blindly: the next attempt reads the length back (HEAD) first and reports
   * success, resends, or reports the mismatch. 5xx and 429 answers mean nothing was applied.
   */
  const append = async (key: string, body: Buffer, position: number, putOptions: PutOptions = {}): Promise<AppendResult> => {
    const where = { cloud: driver.cloud, bucket: driver.bucket, key };
    checkAppendLimit(where, position, body.length);
    const appendedLength = position + body.length;
    let unanswered = false;
    let resynced = false;
    const { value, attempts } = await sender(key, putOptions)('append', async (client) => {
      if (unanswered) {
        let info;
        try {
          info = await supported(client, 'head', key).call(client, key);
        } catch (error) {
          if (error instanceof StorageError) throw error;
          throw toStorageError(driver, 'head after an unanswered append', key, error);
        }
        if (info && !info.appendable) {
          throw new StorageError(
            { ...where, operation: 'append', cloudCode: OBJECT_NOT_APPENDABLE },
            `${CLOUD_LABELS[driver.cloud]} append ${driver.bucket}/${key} failed: after an unanswered append the key holds a normal object`,
          );
        }
        const size = info?.size ?? 0;
        if (info && size === appendedLength) {
          resynced = true;
          return { nextPosition: size };
        }
        if (size !== position) {
          throw new StorageError(
            { ...where, operation: 'append', cloudCode: POSITION_NOT_EQUAL_TO_LENGTH, nextPosition: size },
            `${CLOUD_LABELS[driver.cloud]} append ${driver.bucket}/${key} at ${position} failed: after an unanswered append the object is ${size} bytes long, neither ${position} nor ${appendedLength}`,
          );
        }
        unanswered = false;
      }
      try {
        return await supported(client, 'append', key).call(client, key, body, position, putOptions.contentType);
      } catch (error) {
        if (driver.describeFailure(error).noResponse) unanswered = true;
        throw error;
      }
    });
    return { key, nextPosition: value.nextPosition, attempts, ...(resynced ? { resynced } : {}) };
  };

  return {
    cloud: driver.cloud,
    bucket: driver.bucket,
    putBuffer,
    putFile: (key, filePath, putOptions = {}) =>
      typed(key, async () => {
        const { size } = await stat(filePath);
        const send = sender(key, putOptions);
        if (size > multipart.thresholdBytes) {
          return putFileInParts(key, filePath, size, multipart, putOptions.contentType, send);
        }
        const { value, attempts } = await send('put', (client) => client.put(key, { path: filePath, start: 0, length: size }, putOptions.contentType));
        return { key, attempts, etag: value.etag };
      }),
    putStream: (key, body, putOptions = {}) =>
      typed(key, () => putStreamInParts(key, body, multipart, putOptions.contentType, sender(key, putOptions))),
    append,
    head: async (key, putOptions = {}) =>
      (await sender(key, putOptions)('head', (client) => supported(client, 'head', key).call(client, key))).value,
    objectUrl: (key) => driver.objectUrl(key),
  };
}

/** Opens a file range for one attempt. */
export function readRange(range: FileRange): Readable {
  if (range.length === 0) return Readable.from([]);
  return createReadStream(range.path, { start: range.start, end: range.start + range.length - 1 });
}

/** Encodes each path segment, keeping `/` as the separator. */
export function encodeObjectKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

function toStorageError<C>(driver: CloudDriver<C>, operation: string, key: string, error: unknown): StorageError {
  const { status, cloudCode, requestId, noResponse, nextPosition } = driver.describeFailure(error);
  const retryable = status === undefined ? noResponse : status >= 500 || status === 429 || status === 408;
  const outcome = status === undefined
    ? `${cloudCode ?? (error instanceof Error ? error.message : 'unknown error')}${noResponse ? ' (no response)' : ''}`
    : `HTTP ${status}${cloudCode ? ` ${cloudCode}` : ''}${nextPosition === undefined ? '' : ` (object length ${nextPosition})`}`;
  const message = `${CLOUD_LABELS[driver.cloud]} ${operation} ${driver.bucket}/${key} failed: ${outcome}${requestId ? `, request id ${requestId}` : ''}`;
  const detail = { cloud: driver.cloud, bucket: driver.bucket, key, operation, status, cloudCode, requestId, ...(nextPosition === undefined ? {} : { nextPosition }) };
  return new StorageError(detail, message, { cause: error, retryable });
}

/** An `x-…-next-append-position` header as a number, or undefined when absent or not a position. */
export function parsePosition(header: unknown): number | undefined {
  const value = typeof header === 'string' && header !== '' ? Number(header) : NaN;
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}
