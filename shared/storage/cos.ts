import { Readable } from 'node:stream';
import type COS from 'cos-nodejs-sdk-v5';
import { parseEndpointOverride } from '../endpoint-override';
import { isRetryable, ValidationError } from '../errors';
import type { RetryPolicy } from '../retry';
import { createCloudStore, encodeObjectKey, parsePosition, readRange, type SdkFailure } from './cloud-store';
import type { MultipartOptions } from './multipart';
import type { CloudClient, ObjectInfo, ObjectStore, RetryableBody } from './types';

export interface CosCredentials {
  secretId: string;
  secretKey: string;
  /** With temporary keys (STS, a function role): sent as the SDK's SecurityToken. */
  sessionToken?: string;
}

export interface CosStoreOptions {
  /** `<name>-<appid>`, e.g. `media-1250000000`. */
  bucket: string;
  /** e.g. `ap-guangzhou`. */
  region: string;
  /** An override such as `http://127.0.0.1:9001` (COS_ENDPOINT); requests keep the real virtual-host Host header. */
  endpoint?: string;
  credentials: CosCredentials;
  /** Called once when COS answers ExpiredToken; the request is then retried with the result. */
  refreshCredentials?: () => Promise<CosCredentials>;
  /** Per request, of socket inactivity (the SDK's Timeout), so a long upload does not hit it. */
  timeoutMs?: number;
  /** The shared policy; see COS_SDK_ATTEMPTS_PER_CALL for how it bounds requests. */
  retry?: Partial<RetryPolicy>;
  multipart?: Partial<MultipartOptions>;
}

/**
 * The SDK core retries 5xx, network errors and timeouts itself, immediately and not
 * configurably, up to this many attempts per call, except when the body is a stream. Puts and
 * parts are therefore sent as streams, so a put or a part makes at most `maxAttempts` requests;
 * initiate, complete and abort (no stream body) make at most 4 × `maxAttempts`. With the default
 * policy: 5 and 20.
 */
export const COS_SDK_ATTEMPTS_PER_CALL = 4;

/** `<name>-<appid>`: lowercase letters, digits and inner hyphens, then the numeric APPID. */
export const COS_BUCKET_NAME = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-\d+$/;
export const COS_BUCKET_NAME_RULE = 'must be <name>-<appid>, e.g. media-1250000000 (lowercase letters, digits and hyphens)';

export function isCosBucketName(bucket: string): boolean {
  return COS_BUCKET_NAME.test(bucket);
}

/** Explicit keys (the job's CosConfig) win over the function role's keys from the environment. */
export function resolveCosCredentials(
  explicit: { SecretId?: string; SecretKey?: string } | undefined,
  fromEnvironment: CosCredentials | undefined,
): CosCredentials | undefined {
  if (explicit?.SecretId && explicit.SecretKey) return { secretId: explicit.SecretId, secretKey: explicit.SecretKey };
  return fromEnvironment;
}

/**
 * `http://127.0.0.1:9001` → `{Protocol, Ip}`: the SDK connects there but still sends
 * `Host: <bucket>.cos.<region>.myqcloud.com`, as in production (COS has no path style).
 */
export function cosEndpointOptions(endpoint: string): Pick<COS.COSOptions, 'Protocol' | 'Ip'> {
  const url = parseEndpointOverride(endpoint, 'COS endpoint');
  return { Protocol: url.protocol as 'http:' | 'https:', Ip: url.host };
}

export function cosObjectUrl(bucket: string, region: string, key: string): string {
  return `https://${bucket}.cos.${region}.myqcloud.com/${encodeObjectKey(key)}`;
}

/** cos-nodejs-sdk-v5 is required here, on first use, so a cold start that never uploads never pays for it. */
export function createCosStore(options: CosStoreOptions): ObjectStore {
  if (!isCosBucketName(options.bucket)) throw new ValidationError([{ field: 'bucket', message: COS_BUCKET_NAME_RULE }]);
  const endpoint = options.endpoint ? cosEndpointOptions(options.endpoint) : {};
  const COSClient = require('cos-nodejs-sdk-v5') as typeof COS;
  const at = { Bucket: options.bucket, Region: options.region };

  const connect = (credentials: CosCredentials): CloudClient => {
    const client = new COSClient({
      SecretId: credentials.secretId,
      SecretKey: credentials.secretKey,
      SecurityToken: credentials.sessionToken,
      Timeout: options.timeoutMs ?? 30_000,
      // Only the SDK's own upload helpers (uploadFile, sliceUploadFile) use it; they must not add retries either.
      ChunkRetryTimes: 0,
      ...endpoint,
    });
    return {
      put: async (key, body, contentType) => {
        const result = await client.putObject({ ...at, Key: key, ContentType: contentType, ...streamed(body) });
        return { etag: result.ETag };
      },
      createMultipart: async (key, contentType) => (await client.multipartInit({ ...at, Key: key, ContentType: contentType })).UploadId,
      uploadPart: async (key, uploadId, partNumber, body) =>
        (await client.multipartUpload({ ...at, Key: key, UploadId: uploadId, PartNumber: partNumber, ...streamed(body) })).ETag,
      completeMultipart: async (key, uploadId, parts) => {
        const result = await client.multipartComplete({
          ...at, Key: key, UploadId: uploadId, Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: part.etag })),
        });
        return { etag: result.ETag };
      },
      abortMultipart: async (key, uploadId) => {
        await client.multipartAbort({ ...at, Key: key, UploadId: uploadId });
      },
      // Streamed like a put: the SDK core would resend a Buffer body by itself, which for an append
      // could apply it twice. ContentLength becomes the Content-Length header (COS requires one).
      append: async (key, body, position, contentType) => {
        const result = await client.appendObject({ ...at, Key: key, Position: position, ContentType: contentType, ...streamed(body) });
        return { nextPosition: parsePosition(result.headers?.['x-cos-next-append-position']) ?? position + body.length };
      },
      head: async (key) => {
        try {
          return objectInfo((await client.headObject({ ...at, Key: key })).headers ?? {});
        } catch (error) {
          if ((error as { statusCode?: unknown } | null)?.statusCode === 404) return null;
          throw error;
        }
      },
    };
  };

  return createCloudStore(
    {
      cloud: 'cos',
      bucket: options.bucket,
      connect,
      describeFailure: describeCosFailure,
      expiredTokenCode: 'ExpiredToken',
      objectUrl: (key) => cosObjectUrl(options.bucket, options.region, key),
    },
    options,
  );
}

/** A streamed body opts out of the SDK core's immediate retries, leaving them to the shared policy. */
function streamed(body: RetryableBody): { Body: Readable; ContentLength: number } {
  return Buffer.isBuffer(body)
    ? { Body: Readable.from([body]), ContentLength: body.length }
    : { Body: readRange(body), ContentLength: body.length };
}

/** COS answers HEAD with `x-cos-object-type: appendable` for an appendable object. */
function objectInfo(headers: Record<string, unknown>): ObjectInfo {
  const contentType = headers['content-type'];
  return {
    size: Number(headers['content-length'] ?? 0),
    appendable: String(headers['x-cos-object-type'] ?? '').toLowerCase() === 'appendable',
    contentType: typeof contentType === 'string' ? contentType : undefined,
  };
}

/**
 * XML errors arrive as an Error with `code`, `statusCode` and `RequestId`; body-less ones (a
 * non-XML 5xx) and network errors as plain objects whose `code` is the status or the errno.
 */
function describeCosFailure(error: unknown): SdkFailure {
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    statusCode?: unknown; code?: unknown; RequestId?: unknown; headers?: Record<string, unknown>;
  };
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const code = typeof e.code === 'string' && e.code !== String(status) ? e.code : undefined;
  const requestId = e.RequestId ?? e.headers?.['x-cos-request-id'];
  return {
    status,
    cloudCode: code,
    requestId: typeof requestId === 'string' && requestId !== '' ? requestId : undefined,
    noResponse: status === undefined && isRetryable(error),
    // The SDK keeps the answer's headers on its errors.
    nextPosition: status === 409 ? parsePosition(e.headers?.['x-cos-next-append-position']) : undefined,
  };
}
