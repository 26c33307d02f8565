import type OSS from 'ali-oss';
import { isRetryable } from '../errors';
import type { RetryPolicy } from '../retry';
import { createCloudStore, encodeObjectKey, readRange, type SdkFailure, parsePosition } from './cloud-store';
import type { MultipartOptions } from './multipart';
import type { CloudClient, ObjectInfo, ObjectStore } from './types';

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
  /** Called once when OSS answers SecurityTokenExpired; the request is then retried with the result. */
  refreshCredentials?: () => Promise<OssCredentials>;
  /**
   * Per request, from connect to the end of the response: ali-oss counts sending the body too,
   * so it must cover one part (or a single put up to the multipart threshold) at the slowest
   * bandwidth expected.
   */
  timeoutMs?: number;
  /**
   * The shared policy is the only retry layer: ali-oss runs with retryMax 0, so every attempt
   * is one request and a call makes at most `maxAttempts` requests (5 with the default policy).
   */
  retry?: Partial<RetryPolicy>;
  multipart?: Partial<MultipartOptions>;
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
  const connect = (credentials: OssCredentials): CloudClient => {
    const client = new OSSClient({
      accessKeyId: credentials.accessKeyId,
      accessKeySecret: credentials.accessKeySecret,
      stsToken: credentials.securityToken,
      bucket: options.bucket,
      region: `oss-${options.region}`,
      endpoint: options.endpoint,
      secure: options.endpoint.startsWith('https:'),
      timeout: options.timeoutMs ?? 30_000,
      // ali-oss would retry network errors itself; the shared policy owns retries instead.
      retryMax: 0,
    } as OSS.Options);
    sendStreamBodiesAsBuffers(client as unknown as { urllib: Urllib });
    captureErrorHeaders(client);
    return {
      put: async (key, body, contentType) => {
        const result = Buffer.isBuffer(body)
          ? await client.put(key, body, { mime: contentType } as OSS.PutObjectOptions)
          : await client.putStream(key, readRange(body), { mime: contentType, contentLength: body.length } as OSS.PutStreamOptions);
        return { etag: etagOf(result.res) };
      },
      createMultipart: async (key, contentType) => (await client.initMultipartUpload(key, { mime: contentType })).uploadId,
      // uploadPart takes a file path or a Buffer, with a byte range, and opens a fresh stream for it.
      uploadPart: async (key, uploadId, partNumber, body) =>
        Buffer.isBuffer(body)
          ? (await client.uploadPart(key, uploadId, partNumber, body, 0, body.length)).etag
          : (await client.uploadPart(key, uploadId, partNumber, body.path, body.start, body.start + body.length)).etag,
      completeMultipart: async (key, uploadId, parts) => {
        const result = await client.completeMultipartUpload(key, uploadId, parts.map((part) => ({ number: part.partNumber, etag: part.etag })));
        return { etag: result.etag };
      },
      abortMultipart: async (key, uploadId) => {
        await client.abortMultipartUpload(key, uploadId);
      },
      append: async (key, body, position, contentType) => {
        const capture: HeaderCapture = {};
        captures.add(capture);
        try {
          const result = await client.append(key, body, { position: String(position), mime: contentType, ctx: capture } as OSS.AppendObjectOptions);
          return { nextPosition: Number(result.nextAppendPosition ?? position + body.length) };
        } catch (error) {
          // ali-oss keeps no response headers on its errors; the 409's next-append-position is needed.
          if (capture.headers && typeof error === 'object' && error !== null) Object.assign(error, { headers: capture.headers });
          throw error;
        }
      },
      head: async (key) => {
        try {
          return objectInfo((await client.head(key)).res.headers as Record<string, string | undefined>);
        } catch (error) {
          if ((error as { status?: unknown } | null)?.status === 404) return null;
          throw error;
        }
      },
    };
  };

  return createCloudStore(
    {
      cloud: 'oss',
      bucket: options.bucket,
      connect,
      describeFailure: describeOssFailure,
      expiredTokenCode: 'SecurityTokenExpired',
      objectUrl: (key) => `https://${options.bucket}.oss-${options.region}.aliyuncs.com/${encodeObjectKey(key)}`,
    },
    options,
  );
}

/** Passed as a request's urllib `ctx`; the wrapper below fills in the answer's headers. */
interface HeaderCapture {
  headers?: Record<string, string | undefined>;
}

const captures = new WeakSet<HeaderCapture>();

/**
 * Wraps the client's HTTP function (ali-oss's `urllib`, the default of its `urllib` option) so a
 * request that carries a HeaderCapture as its ctx gets the answer's headers, also on an error.
 */
function captureErrorHeaders(client: OSS): void {
  type Http = { request(url: string, params: { ctx?: unknown }): Promise<{ headers?: Record<string, string | undefined> }> };
  const holder = client as unknown as { urllib: Http };
  const http = holder.urllib;
  holder.urllib = {
    request: async (url, params) => {
      const result = await http.request(url, params);
      const ctx = params.ctx as HeaderCapture | undefined;
      if (ctx && captures.has(ctx)) ctx.headers = result.headers;
      return result;
    },
  };
}

/** OSS answers HEAD with `x-oss-object-type` (Normal, Multipart, Appendable) and, for an appendable object, its next position. */
function objectInfo(headers: Record<string, string | undefined>): ObjectInfo {
  const appendable = headers['x-oss-object-type']?.toLowerCase() === 'appendable';
  const next = headers['x-oss-next-append-position'];
  return {
    size: Number(appendable && next !== undefined ? next : headers['content-length'] ?? 0),
    appendable,
    contentType: headers['content-type'],
  };
}

interface Urllib {
  request(url: string, args: Record<string, unknown>): Promise<unknown>;
}

/**
 * urllib 2 (ali-oss's HTTP client) reports a request with a stream body that fails before any
 * answer twice (pump's callback and the request's 'error' event) and prints the second report as
 * "[urllib:warn] … callback twice!!!" with a stack on stderr. The caller gets the first error
 * either way; a Buffer body goes through req.end() and is reported once. ali-oss hands streams for
 * parts (also from Buffers) and putStream; each is one part or a single put below the multipart
 * threshold, so what is buffered stays bounded (partSize × parallel parts).
 */
function sendStreamBodiesAsBuffers(client: { urllib: Urllib }): void {
  const urllib = client.urllib;
  client.urllib = {
    request: async (url, args) => {
      const stream = args.stream as AsyncIterable<Buffer> | undefined;
      if (stream === undefined) return urllib.request(url, args);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      const { stream: _sent, ...rest } = args;
      return urllib.request(url, { ...rest, content: Buffer.concat(chunks) });
    },
  };
}

function etagOf(res: { headers: unknown }): string | undefined {
  return (res.headers as Record<string, string | undefined>)['etag'];
}

function describeOssFailure(error: unknown): SdkFailure {
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    status?: unknown; code?: unknown; name?: unknown; requestId?: unknown; headers?: Record<string, unknown>;
  };
  // ali-oss reports failures without an answer as status -1 (network) or -2 (timeout), or with no status.
  const status = typeof e.status === 'number' && e.status > 0 ? e.status : undefined;
  const code = typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : undefined;
  return {
    status,
    cloudCode: code,
    requestId: typeof e.requestId === 'string' ? e.requestId : undefined,
    noResponse: status === undefined && (e.status === -1 || e.status === -2 || isRetryable(error)),
    nextPosition: status === 409 ? parsePosition(e.headers?.['x-oss-next-append-position']) : undefined,
  };
}

