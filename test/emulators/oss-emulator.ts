/**
 * In-memory Alibaba OSS emulator for tests.
 *
 * It speaks the part of the OSS REST API that the real `ali-oss` SDK uses for objects (put, get,
 * head, delete, copy, append, multipart upload, bucket listing v1/v2), verifies V1 and V4 request
 * signatures the way OSS does, and can inject faults (error statuses, connection resets, lost
 * answers, delays, outages, refused appends, expired STS tokens, answered with 403
 * SecurityTokenExpired) so that retry and error paths can be tested against the real SDK. The
 * parts shared with the COS emulator live in emulator-kit.ts.
 */
import * as crypto from 'node:crypto';
import type * as http from 'node:http';
import * as net from 'node:net';
import {
  ApiError, EmulatorServer, compareStrings, decodeComponent, headerString, headerValue, listPage, md5,
  noSuchKey, objectId, parseListLimit, readBody, rfc3986Encode, xmlDocument, xmlFields, xmlNode,
  xmlText, type CloudDialect, type FaultConfig, type RequestContext, type RequestLogEntry,
  type StoredObject,
} from './emulator-kit';

export type { FaultConfig, RequestLogEntry, StoredObject } from './emulator-kit';

export interface OssEmulatorOptions {
  accessKeyId: string;
  accessKeySecret: string;
  /** If set, every request must carry `x-oss-security-token` equal to it. */
  securityToken?: string;
  faults?: Partial<FaultConfig>;
  /** Listen on this port of 127.0.0.1 (npm run emulators); default any free one. */
  port?: number;
}

export interface OssCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken?: string;
}

export interface OssEmulator {
  endpoint: string;
  port: number;
  /** Keyed by `${bucket}/${key}`. */
  objects: Map<string, StoredObject>;
  requests: RequestLogEntry[];
  setFaults(f: Partial<FaultConfig>): void;
  /** Every request answered 503 while on. */
  setOutage(on: boolean): void;
  setCredentials(c: OssCredentials): void;
  getObject(bucket: string, key: string): Buffer | undefined;
  listKeys(bucket: string, prefix?: string): string[];
  close(): Promise<void>;
}

/**
 * Query parameters OSS treats as sub-resources. Only these belong to the V1 canonical resource;
 * everything else (prefix, marker, max-keys, list-type, ...) is left out of the V1 signature.
 */
const SUB_RESOURCES = new Set([
  'acl', 'append', 'asyncFetch', 'bucketInfo', 'callback', 'callback-var', 'cname', 'comp',
  'continuation-token', 'cors', 'delete', 'encryption', 'endTime', 'img', 'inventory',
  'inventoryId', 'lifecycle', 'live', 'location', 'logging', 'objectMeta', 'partNumber', 'policy',
  'position', 'qos', 'referer', 'regionList', 'replication', 'replicationLocation',
  'replicationProgress', 'response-cache-control', 'response-content-disposition',
  'response-content-encoding', 'response-content-language', 'response-content-type',
  'response-expires', 'restore', 'security-token', 'sequential', 'startTime', 'stat', 'status',
  'style', 'styleName', 'symlink', 'tagging', 'transferAcceleration', 'uploadId', 'uploads',
  'versionId', 'versioning', 'versions', 'vod', 'website', 'worm', 'wormExtend', 'wormId',
  'x-oss-process',
]);

const OWNER_ID = '1000000000000000';
const V4_ALGORITHM = 'OSS4-HMAC-SHA256';

const OSS_DIALECT: CloudDialect = {
  name: 'OSS',
  requestIdHeader: 'x-oss-request-id',
  serverHeader: 'AliyunOSS',
  newRequestId: () => crypto.randomBytes(12).toString('hex').toUpperCase(),
  tokenHeader: 'x-oss-security-token',
  expiredTokenError: () => new ApiError(403, 'SecurityTokenExpired', 'The security token you provided has expired.'),
  upperCaseEtags: true,
  minPartSize: 100 * 1024,
  noSuchUploadMessage: 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  entityTooSmallMessage: 'Your proposed upload smaller than the minimum allowed object size.',
  checkContentMd5,
  objectLocation: (hostname, key) => `http://${hostname}/${encodeURIComponent(key)}`,
  nextAppendPositionHeader: 'x-oss-next-append-position',
  // OSS documents no code of its own for a refused append (retention-protected objects); its code
  // for "this key takes no append" is ObjectNotAppendable (EC 0026-00000017). Versioning does not
  // refuse appends on OSS: they go to the current version when that is appendable.
  appendsRefusedError: () => new ApiError(409, 'ObjectNotAppendable', 'The object is not appendable.'),
};

class OssEmulatorServer extends EmulatorServer<RequestContext> implements OssEmulator {
  private credentials: OssCredentials;

  constructor(options: OssEmulatorOptions) {
    super(OSS_DIALECT);
    this.credentials = {
      accessKeyId: options.accessKeyId,
      accessKeySecret: options.accessKeySecret,
      securityToken: options.securityToken,
    };
    this.setFaults(options.faults ?? {});
  }

  setCredentials(c: OssCredentials): void {
    // Tokens marked expired stay expired; the new one passes unless it is the same token.
    this.credentials = { ...c };
  }

  protected override currentToken(): string | undefined {
    return this.credentials.securityToken;
  }

  protected override newContext(base: RequestContext): RequestContext {
    return base;
  }

  /**
   * The bucket is the first Host label (virtual-host style, what the SDK sends even to an IP
   * endpoint); a Host that is an IP or a single label (localhost) means path style, `/<bucket>/<key>`.
   */
  protected override locate(ctx: RequestContext, rawPath: string): void {
    const path = decodeComponent(rawPath).replace(/^\//, '');
    const host = ctx.hostname.replace(/^\[|\]$/g, '');
    if (net.isIP(host) !== 0 || !host.includes('.')) {
      const slash = path.indexOf('/');
      ctx.bucket = slash < 0 ? path : path.slice(0, slash);
      ctx.key = slash < 0 ? '' : path.slice(slash + 1);
    } else {
      ctx.bucket = host.slice(0, host.indexOf('.'));
      ctx.key = path;
    }
    ctx.log.bucket = ctx.bucket;
    ctx.log.key = ctx.key;
  }

  protected override authenticate(ctx: RequestContext): void {
    const { req } = ctx;
    const authorization = headerValue(req, 'authorization');
    if (!authorization) {
      throw new ApiError(403, 'AccessDenied', 'You have no right to access this object because of bucket acl.');
    }
    const signed = authorization.startsWith(`${V4_ALGORITHM} `)
      ? parseV4Authorization(authorization, headerValue(req, 'x-oss-date'))
      : parseV1Authorization(authorization);

    const creds = this.credentials;
    if (signed.accessKeyId !== creds.accessKeyId) {
      throw new ApiError(403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.', {
        OSSAccessKeyId: signed.accessKeyId,
      });
    }
    const token = headerValue(req, 'x-oss-security-token');
    if (token !== creds.securityToken) {
      // OSS answers InvalidAccessKeyId both for a missing token and for a wrong one.
      const message = token === undefined
        ? 'The OSS Access Key Id you provided does not exist in our records.'
        : 'The security token you provided is invalid.';
      throw new ApiError(403, 'InvalidAccessKeyId', message, { OSSAccessKeyId: signed.accessKeyId });
    }

    const method = req.method ?? '';
    if (signed.version === 1) {
      const stringToSign = signatureV1StringToSign(method, req.headers, canonicalResourceV1(ctx.bucket, ctx.key, ctx.query));
      const expected = crypto.createHmac('sha1', creds.accessKeySecret).update(stringToSign, 'utf8').digest('base64');
      if (expected !== signed.signature) {
        throw new ApiError(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
          OSSAccessKeyId: signed.accessKeyId, SignatureProvided: signed.signature, StringToSign: stringToSign,
        });
      }
      return;
    }

    const canonicalRequest = canonicalRequestV4(method, ctx.bucket, ctx.key, ctx.query, req.headers, signed.additionalHeaders);
    const stringToSign = [V4_ALGORITHM, signed.timestamp, signed.scope, sha256Hex(canonicalRequest)].join('\n');
    const expected = signatureV4(creds.accessKeySecret, signed.date, signed.region, stringToSign);
    if (expected !== signed.signature) {
      throw new ApiError(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
        OSSAccessKeyId: signed.accessKeyId, SignatureProvided: signed.signature, StringToSign: stringToSign, CanonicalRequest: canonicalRequest,
      });
    }
  }

  protected override async route(ctx: RequestContext): Promise<void> {
    const { bucket, key, query } = ctx;
    const method = ctx.req.method;
    if (!bucket) throw this.notImplemented();
    if (!key) {
      if (method === 'GET' && onlySubResources(query, ['continuation-token'])) return this.listObjects(ctx);
      throw this.notImplemented();
    }
    if (method === 'POST' && query.has('append') && onlySubResources(query, ['append', 'position'])) return this.appendObject(ctx);
    if (method === 'POST' && query.has('uploads')) return this.initiateMultipart(ctx);
    if (method === 'POST' && query.has('uploadId')) return this.completeMultipart(ctx);
    if (method === 'PUT' && query.has('uploadId') && query.has('partNumber')) return this.uploadPart(ctx);
    if (method === 'DELETE' && query.has('uploadId')) return this.abortMultipart(ctx);
    // Anything else with a sub-resource (acl, tagging, ...) is not a plain object operation.
    if (!onlySubResources(query, [])) throw this.notImplemented();
    if (method === 'PUT') {
      return headerValue(ctx.req, 'x-oss-copy-source') === undefined ? this.putObject(ctx) : this.copyObject(ctx);
    }
    if (method === 'GET' || method === 'HEAD') return this.getObjectResponse(ctx);
    if (method === 'DELETE') return this.deleteObject(ctx);
    throw this.notImplemented();
  }

  private async putObject(ctx: RequestContext): Promise<void> {
    const body = await readBody(ctx.req);
    checkContentMd5(ctx.req, body);
    const stored: StoredObject = {
      body,
      contentType: headerValue(ctx.req, 'content-type'),
      etag: this.quotedEtag(md5(body)),
      lastModified: new Date(),
    };
    this.objects.set(objectId(ctx.bucket, ctx.key), stored);
    this.send(ctx, 200, { etag: stored.etag, 'content-md5': md5(body).toString('base64') });
  }

  private async copyObject(ctx: RequestContext): Promise<void> {
    await readBody(ctx.req);
    const source = parseCopySource(headerValue(ctx.req, 'x-oss-copy-source') ?? '');
    const original = this.objects.get(objectId(source.bucket, source.key));
    if (!original) throw noSuchKey();
    const replaceMetadata = headerValue(ctx.req, 'x-oss-metadata-directive') === 'REPLACE';
    const copy: StoredObject = {
      body: original.body,
      contentType: replaceMetadata ? headerValue(ctx.req, 'content-type') : original.contentType,
      etag: original.etag,
      lastModified: new Date(),
    };
    this.objects.set(objectId(ctx.bucket, ctx.key), copy);
    this.sendXml(ctx, 200, 'CopyObjectResult', xmlText('ETag', copy.etag) + xmlText('LastModified', copy.lastModified.toISOString()));
  }

  private getObjectResponse(ctx: RequestContext): void {
    const stored = this.objects.get(objectId(ctx.bucket, ctx.key));
    if (!stored) throw noSuchKey();
    this.send(ctx, 200, {
      'content-type': stored.contentType ?? 'application/octet-stream',
      'content-length': stored.body.length,
      etag: stored.etag,
      'last-modified': stored.lastModified.toUTCString(),
      'accept-ranges': 'bytes',
      'x-oss-object-type': objectType(stored),
      ...(stored.appendable ? { 'x-oss-next-append-position': stored.body.length } : {}),
      'x-oss-storage-class': 'Standard',
    }, stored.body);
  }

  private initiateMultipart(ctx: RequestContext): void {
    this.startUpload(ctx, crypto.randomBytes(16).toString('hex').toUpperCase(), headerValue(ctx.req, 'content-type'));
  }

  private listObjects(ctx: RequestContext): void {
    const { query } = ctx;
    const isV2 = query.get('list-type') === '2';
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = parseListLimit(query.get('max-keys'), 'max-keys', 1000, 100);
    const continuationToken = query.get('continuation-token');
    const after = isV2
      ? (continuationToken !== undefined ? Buffer.from(continuationToken, 'base64url').toString('utf8') : query.get('start-after') ?? '')
      : query.get('marker') ?? '';
    const page = listPage(this.sortedObjects(ctx.bucket), prefix, delimiter, after, maxKeys);
    const withOwner = !isV2 || query.get('fetch-owner') === 'true';

    const contents = page.objects.map(([key, stored]) => xmlNode('Contents', [
        xmlText('Key', key),
        xmlText('LastModified', stored.lastModified.toISOString()),
        xmlText('ETag', stored.etag),
        xmlText('Type', objectType(stored)),
        xmlText('Size', stored.body.length),
        xmlText('StorageClass', 'Standard'),
        withOwner ? xmlNode('Owner', xmlText('ID', OWNER_ID) + xmlText('DisplayName', OWNER_ID)) : '',
      ].join('')));
    const commonPrefixes = page.prefixes.map((p) => xmlNode('CommonPrefixes', xmlText('Prefix', p)));
    const header = isV2
      ? [
        xmlText('Name', ctx.bucket), xmlText('Prefix', prefix), xmlText('MaxKeys', maxKeys),
        xmlText('Delimiter', delimiter), xmlText('IsTruncated', page.truncated),
        xmlText('KeyCount', page.objects.length + page.prefixes.length),
        query.has('start-after') ? xmlText('StartAfter', query.get('start-after') ?? '') : '',
        continuationToken !== undefined ? xmlText('ContinuationToken', continuationToken) : '',
        page.truncated ? xmlText('NextContinuationToken', Buffer.from(page.last, 'utf8').toString('base64url')) : '',
      ]
      : [
        xmlText('Name', ctx.bucket), xmlText('Prefix', prefix), xmlText('Marker', after),
        xmlText('MaxKeys', maxKeys), xmlText('Delimiter', delimiter), xmlText('IsTruncated', page.truncated),
        page.truncated ? xmlText('NextMarker', page.last) : '',
      ];
    this.sendXml(ctx, 200, 'ListBucketResult', [...header, ...contents, ...commonPrefixes].join(''));
  }

  protected override sendError(ctx: RequestContext, err: ApiError): void {
    const inner = xmlFields({ Code: err.code, Message: err.message, RequestId: ctx.requestId, HostId: ctx.hostname, ...err.details });
    // Keep the connection usable: a body we did not read must still be drained.
    ctx.req.resume();
    if (ctx.req.method === 'HEAD') {
      // HEAD answers have no body; OSS puts the error document, base64-encoded, in x-oss-err.
      this.send(ctx, err.status, { ...err.headers, 'x-oss-err': Buffer.from(xmlDocument('Error', inner)).toString('base64') });
      return;
    }
    this.sendXml(ctx, err.status, 'Error', inner, err.headers);
  }
}

export async function startOssEmulator(options: OssEmulatorOptions): Promise<OssEmulator> {
  const emulator = new OssEmulatorServer(options);
  if (!options.port) await emulator.listen();
  else {
    await new Promise<void>((resolve, reject) => emulator.server.once('error', reject).listen(options.port, '127.0.0.1', resolve));
    emulator.port = options.port;
    emulator.endpoint = `http://127.0.0.1:${options.port}`;
  }
  return emulator;
}

// ---------------------------------------------------------------- request parsing

function parseCopySource(header: string): { bucket: string; key: string } {
  const withoutVersion = header.replace(/\?.*$/, '').replace(/^\//, '');
  const slash = withoutVersion.indexOf('/');
  if (slash <= 0) throw new ApiError(400, 'InvalidArgument', 'Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.');
  return { bucket: withoutVersion.slice(0, slash), key: decodeComponent(withoutVersion.slice(slash + 1)) };
}

function objectType(stored: StoredObject): string {
  if (stored.appendable) return 'Appendable';
  return stored.etag.includes('-') ? 'Multipart' : 'Normal';
}

/** True when every sub-resource in the query is one of `allowed`. */
function onlySubResources(query: Map<string, string>, allowed: string[]): boolean {
  return [...query.keys()].every((name) => !SUB_RESOURCES.has(name) || allowed.includes(name));
}

function checkContentMd5(req: http.IncomingMessage, body: Buffer): void {
  const given = headerValue(req, 'content-md5');
  if (given !== undefined && given !== md5(body).toString('base64')) {
    throw new ApiError(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.');
  }
}

// ---------------------------------------------------------------- signatures

type SignedRequest =
  | { version: 1; accessKeyId: string; signature: string }
  | {
    version: 4; accessKeyId: string; signature: string; timestamp: string; date: string; region: string;
    scope: string; additionalHeaders: string[];
  };

function invalidAuthorization(detail: string): ApiError {
  return new ApiError(400, 'InvalidArgument', `Authorization header is invalid: ${detail}`);
}

/** `OSS <accessKeyId>:<signature>` */
function parseV1Authorization(header: string): SignedRequest {
  const match = /^OSS ([^:]+):(.+)$/.exec(header);
  if (!match?.[1] || !match[2]) throw invalidAuthorization('expected "OSS <AccessKeyId>:<Signature>".');
  return { version: 1, accessKeyId: match[1], signature: match[2] };
}

/** `OSS4-HMAC-SHA256 Credential=<ak>/<yyyymmdd>/<region>/oss/aliyun_v4_request,[AdditionalHeaders=a;b,]Signature=<hex>` */
function parseV4Authorization(header: string, timestamp: string | undefined): SignedRequest {
  const fields = new Map(header.slice(V4_ALGORITHM.length + 1).split(',').map((field) => {
    const eq = field.indexOf('=');
    return [field.slice(0, eq).trim(), field.slice(eq + 1).trim()] as const;
  }));
  const [accessKeyId, date, region, product, terminator, ...rest] = (fields.get('Credential') ?? '').split('/');
  const signature = fields.get('Signature');
  if (!accessKeyId || !date || !region || product !== 'oss' || terminator !== 'aliyun_v4_request' || rest.length > 0) {
    throw invalidAuthorization('Credential must be <AccessKeyId>/<yyyymmdd>/<region>/oss/aliyun_v4_request.');
  }
  if (!signature) throw invalidAuthorization('Signature is missing.');
  if (!timestamp || timestamp.split('T')[0] !== date) {
    throw invalidAuthorization('x-oss-date is missing or does not match the credential date.');
  }
  const additionalHeaders = (fields.get('AdditionalHeaders') ?? '').split(';').filter(Boolean);
  return {
    version: 4, accessKeyId, signature, timestamp, date, region,
    scope: `${date}/${region}/oss/aliyun_v4_request`, additionalHeaders,
  };
}

/** V1 string to sign: method, Content-MD5, Content-Type, date, sorted x-oss-* headers, resource. */
function signatureV1StringToSign(method: string, headers: http.IncomingHttpHeaders, resource: string): string {
  const ossHeaders = Object.keys(headers)
    .filter((name) => name.startsWith('x-oss-'))
    .sort()
    .map((name) => `${name}:${(headerString(headers[name]) ?? '').trim()}`);
  return [
    method,
    headerString(headers['content-md5']) ?? '',
    headerString(headers['content-type']) ?? '',
    // The SDK sends no Date header; its x-oss-date takes the date's place.
    headerString(headers['x-oss-date']) ?? headerString(headers.date) ?? '',
    ...ossHeaders,
    resource,
  ].join('\n');
}

/** `/<bucket>/<decoded key>` plus the sorted sub-resources, with a bare name for an empty value. */
function canonicalResourceV1(bucket: string, key: string, query: Map<string, string>): string {
  const base = bucket ? `/${bucket}/${key}` : '/';
  const subResources = [...query]
    .filter(([name]) => SUB_RESOURCES.has(name))
    .sort(([a], [b]) => compareStrings(a, b))
    .map(([name, value]) => (value === '' ? name : `${name}=${value}`));
  return subResources.length > 0 ? `${base}?${subResources.join('&')}` : base;
}

function canonicalRequestV4(
  method: string,
  bucket: string,
  key: string,
  query: Map<string, string>,
  headers: http.IncomingHttpHeaders,
  additionalHeaders: string[],
): string {
  const uri = rfc3986Encode(bucket ? `/${bucket}/${key}` : '/').replace(/%2F/g, '/');
  const canonicalQuery = [...query]
    .sort(([a], [b]) => compareStrings(a, b))
    .map(([name, value]) => (value === '' ? rfc3986Encode(name) : `${rfc3986Encode(name)}=${rfc3986Encode(value)}`))
    .join('&');
  const signedHeaders = new Set(additionalHeaders);
  for (const name of Object.keys(headers)) {
    if (name === 'content-type' || name === 'content-md5' || name.startsWith('x-oss-')) signedHeaders.add(name);
  }
  const canonicalHeaders = [...signedHeaders]
    .sort()
    .map((name) => `${name}:${(headerString(headers[name]) ?? '').trim()}\n`)
    .join('');
  return [
    method,
    uri,
    canonicalQuery,
    canonicalHeaders,
    additionalHeaders.join(';'),
    headerString(headers['x-oss-content-sha256']) ?? 'UNSIGNED-PAYLOAD',
  ].join('\n');
}

function signatureV4(secret: string, date: string, region: string, stringToSign: string): string {
  const hmac = (key: crypto.BinaryLike, data: string) => crypto.createHmac('sha256', key).update(data).digest();
  const signingKey = hmac(hmac(hmac(hmac(`aliyun_v4${secret}`, date), region), 'oss'), 'aliyun_v4_request');
  return crypto.createHmac('sha256', signingKey).update(stringToSign).digest('hex');
}

// ---------------------------------------------------------------- small helpers

function sha256Hex(data: string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

