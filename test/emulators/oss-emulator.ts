/**
 * In-memory Alibaba OSS emulator for tests.
 *
 * It speaks the part of the OSS REST API that the real `ali-oss` SDK uses for objects (put, get,
 * head, delete, copy, multipart upload, bucket listing v1/v2), verifies V1 and V4 request
 * signatures the way OSS does, and can inject faults (error statuses, connection resets, delays,
 * expired STS tokens) so that retry and error paths can be tested against the real SDK.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';

export interface OssEmulatorOptions {
  accessKeyId: string;
  accessKeySecret: string;
  /** If set, every request must carry `x-oss-security-token` equal to it. */
  securityToken?: string;
  faults?: Partial<FaultConfig>;
}

export interface FaultConfig {
  /** 0..1, fraction of requests answered with one of `errorStatuses`. */
  errorRate: number;
  errorStatuses: number[];
  /** 0..1, fraction of requests whose connection is destroyed before an answer (mid-body for uploads). */
  resetRate: number;
  /** 0..1, fraction of requests answered only after `slowMs`. */
  slowRate: number;
  slowMs: number;
  /**
   * When turned on, the security token installed at that moment counts as expired: requests
   * carrying it get 403 SecurityTokenExpired, also after setCredentials() installs a new token
   * (which passes).
   */
  expiredTokenUntilRefresh: boolean;
  /** Drawn per request once for each non-zero rate (error, reset, slow), then once to pick an error status. */
  random: () => number;
}

export interface StoredObject {
  body: Buffer;
  contentType?: string;
  etag: string;
  lastModified: Date;
}

export interface RequestLogEntry {
  method: string;
  bucket: string;
  key: string;
  query: string;
  /** The status answered; 0 when the connection was reset instead. */
  status: number;
  /** Faults applied, joined by '+': 'slow', 'error', 'reset', 'expiredToken'. */
  fault?: string;
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
  setCredentials(c: OssCredentials): void;
  getObject(bucket: string, key: string): Buffer | undefined;
  listKeys(bucket: string, prefix?: string): string[];
  close(): Promise<void>;
}

const DEFAULT_FAULTS: FaultConfig = {
  errorRate: 0,
  errorStatuses: [500, 503, 429],
  resetRate: 0,
  slowRate: 0,
  slowMs: 0,
  expiredTokenUntilRefresh: false,
  random: Math.random,
};

const INJECTED_ERROR_CODES: Record<number, string> = {
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

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

/** OSS rejects a multipart completion if any part but the last is smaller than this. */
const MIN_PART_SIZE = 100 * 1024;
const OWNER_ID = '1000000000000000';
const V4_ALGORITHM = 'OSS4-HMAC-SHA256';

/** An OSS error answer; thrown by handlers and turned into error XML in one place. */
class OssError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra elements for the error XML, e.g. the string to sign on a signature mismatch. */
    readonly details: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  requestId: string;
  hostname: string;
  bucket: string;
  key: string;
  /** Decoded query parameters; a parameter given without a value maps to ''. */
  query: Map<string, string>;
  log: RequestLogEntry;
}

interface MultipartUpload {
  bucket: string;
  key: string;
  contentType?: string;
  parts: Map<number, { body: Buffer; etag: string }>;
}

class OssEmulatorServer implements OssEmulator {
  endpoint = '';
  port = 0;
  readonly objects = new Map<string, StoredObject>();
  readonly requests: RequestLogEntry[] = [];
  private readonly uploads = new Map<string, MultipartUpload>();
  private readonly expiredTokens = new Set<string | undefined>();
  private faults: FaultConfig = { ...DEFAULT_FAULTS };
  private credentials: OssCredentials;
  readonly server: http.Server;

  constructor(options: OssEmulatorOptions) {
    this.credentials = {
      accessKeyId: options.accessKeyId,
      accessKeySecret: options.accessKeySecret,
      securityToken: options.securityToken,
    };
    this.setFaults(options.faults ?? {});
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  setFaults(f: Partial<FaultConfig>): void {
    this.faults = { ...this.faults, ...f };
    if (f.expiredTokenUntilRefresh === true) this.expiredTokens.add(this.credentials.securityToken);
    if (f.expiredTokenUntilRefresh === false) this.expiredTokens.clear();
  }

  setCredentials(c: OssCredentials): void {
    // Tokens marked expired stay expired; the new one passes unless it is the same token.
    this.credentials = { ...c };
  }

  getObject(bucket: string, key: string): Buffer | undefined {
    return this.objects.get(objectId(bucket, key))?.body;
  }

  listKeys(bucket: string, prefix = ''): string[] {
    return this.sortedObjects(bucket).map(([key]) => key).filter((key) => key.startsWith(prefix));
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      // The SDK keeps sockets alive; without this close() would wait for them to time out.
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestId = crypto.randomBytes(12).toString('hex').toUpperCase();
    res.setHeader('x-oss-request-id', requestId);
    res.setHeader('server', 'AliyunOSS');
    const log: RequestLogEntry = { method: req.method ?? '', bucket: '', key: '', query: '', status: 0 };
    this.requests.push(log);
    const ctx: RequestContext = {
      req, res, requestId, log, hostname: hostnameOf(req), bucket: '', key: '', query: new Map(),
    };
    try {
      parseTarget(ctx);
      if (await this.injectFaults(ctx)) return;
      this.authenticate(ctx);
      await this.route(ctx);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.sendError(ctx, err instanceof OssError ? err : new OssError(500, 'InternalError', String(err)));
    }
  }

  /** Applies the configured faults. Returns true when the request was consumed by a reset. */
  private async injectFaults(ctx: RequestContext): Promise<boolean> {
    const { random } = this.faults;
    const roll = (rate: number) => rate > 0 && random() < rate;
    const error = roll(this.faults.errorRate);
    const reset = roll(this.faults.resetRate);
    const slow = roll(this.faults.slowRate);
    const applied: string[] = [];
    const record = (fault: string) => {
      applied.push(fault);
      ctx.log.fault = applied.join('+');
    };

    if (slow) {
      record('slow');
      await new Promise((resolve) => setTimeout(resolve, this.faults.slowMs));
    }
    if (reset) {
      record('reset');
      resetConnection(ctx.req);
      return true;
    }
    if (error) {
      record('error');
      const statuses = this.faults.errorStatuses;
      const status = statuses[Math.floor(random() * statuses.length)] ?? 500;
      throw new OssError(status, INJECTED_ERROR_CODES[status] ?? 'InjectedFault', 'Injected fault.');
    }
    if (this.expiredTokens.has(headerValue(ctx.req, 'x-oss-security-token'))) {
      record('expiredToken');
      throw new OssError(403, 'SecurityTokenExpired', 'The security token you provided has expired.');
    }
    return false;
  }

  private authenticate(ctx: RequestContext): void {
    const { req } = ctx;
    const authorization = headerValue(req, 'authorization');
    if (!authorization) {
      throw new OssError(403, 'AccessDenied', 'You have no right to access this object because of bucket acl.');
    }
    const signed = authorization.startsWith(`${V4_ALGORITHM} `)
      ? parseV4Authorization(authorization, headerValue(req, 'x-oss-date'))
      : parseV1Authorization(authorization);

    const creds = this.credentials;
    if (signed.accessKeyId !== creds.accessKeyId) {
      throw new OssError(403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.', {
        OSSAccessKeyId: signed.accessKeyId,
      });
    }
    const token = headerValue(req, 'x-oss-security-token');
    if (token !== creds.securityToken) {
      // OSS answers InvalidAccessKeyId both for a missing token and for a wrong one.
      const message = token === undefined
        ? 'The OSS Access Key Id you provided does not exist in our records.'
        : 'The security token you provided is invalid.';
      throw new OssError(403, 'InvalidAccessKeyId', message, { OSSAccessKeyId: signed.accessKeyId });
    }

    const method = req.method ?? '';
    if (signed.version === 1) {
      const stringToSign = signatureV1StringToSign(method, req.headers, canonicalResourceV1(ctx.bucket, ctx.key, ctx.query));
      const expected = crypto.createHmac('sha1', creds.accessKeySecret).update(stringToSign, 'utf8').digest('base64');
      if (expected !== signed.signature) {
        throw new OssError(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
          OSSAccessKeyId: signed.accessKeyId, SignatureProvided: signed.signature, StringToSign: stringToSign,
        });
      }
      return;
    }

    const canonicalRequest = canonicalRequestV4(method, ctx.bucket, ctx.key, ctx.query, req.headers, signed.additionalHeaders);
    const stringToSign = [V4_ALGORITHM, signed.timestamp, signed.scope, sha256Hex(canonicalRequest)].join('\n');
    const expected = signatureV4(creds.accessKeySecret, signed.date, signed.region, stringToSign);
    if (expected !== signed.signature) {
      throw new OssError(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
        OSSAccessKeyId: signed.accessKeyId, SignatureProvided: signed.signature, StringToSign: stringToSign, CanonicalRequest: canonicalRequest,
      });
    }
  }

  private async route(ctx: RequestContext): Promise<void> {
    const { bucket, key, query } = ctx;
    const method = ctx.req.method;
    if (!bucket) throw notImplemented();
    if (!key) {
      if (method === 'GET' && onlySubResources(query, ['continuation-token'])) return this.listObjects(ctx);
      throw notImplemented();
    }
    if (method === 'POST' && query.has('uploads')) return this.initiateMultipart(ctx);
    if (method === 'POST' && query.has('uploadId')) return this.completeMultipart(ctx);
    if (method === 'PUT' && query.has('uploadId') && query.has('partNumber')) return this.uploadPart(ctx);
    if (method === 'DELETE' && query.has('uploadId')) return this.abortMultipart(ctx);
    // Anything else with a sub-resource (acl, tagging, ...) is not a plain object operation.
    if (!onlySubResources(query, [])) throw notImplemented();
    if (method === 'PUT') {
      return headerValue(ctx.req, 'x-oss-copy-source') === undefined ? this.putObject(ctx) : this.copyObject(ctx);
    }
    if (method === 'GET' || method === 'HEAD') return this.getObjectResponse(ctx);
    if (method === 'DELETE') return this.deleteObject(ctx);
    throw notImplemented();
  }

  private async putObject(ctx: RequestContext): Promise<void> {
    const body = await readBody(ctx.req);
    checkContentMd5(ctx.req, body);
    const stored: StoredObject = {
      body,
      contentType: headerValue(ctx.req, 'content-type'),
      etag: quotedEtag(md5(body)),
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
      'x-oss-object-type': stored.etag.includes('-') ? 'Multipart' : 'Normal',
      'x-oss-storage-class': 'Standard',
    }, stored.body);
  }

  private deleteObject(ctx: RequestContext): void {
    this.objects.delete(objectId(ctx.bucket, ctx.key));
    this.send(ctx, 204, {});
  }

  private initiateMultipart(ctx: RequestContext): void {
    const uploadId = crypto.randomBytes(16).toString('hex').toUpperCase();
    this.uploads.set(uploadId, {
      bucket: ctx.bucket, key: ctx.key, contentType: headerValue(ctx.req, 'content-type'), parts: new Map(),
    });
    this.sendXml(ctx, 200, 'InitiateMultipartUploadResult',
      xmlText('Bucket', ctx.bucket) + xmlText('Key', ctx.key) + xmlText('UploadId', uploadId));
  }

  private async uploadPart(ctx: RequestContext): Promise<void> {
    const upload = this.findUpload(ctx);
    const partNumber = Number(ctx.query.get('partNumber'));
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
      throw new OssError(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive.');
    }
    const body = await readBody(ctx.req);
    checkContentMd5(ctx.req, body);
    const etag = quotedEtag(md5(body));
    upload.parts.set(partNumber, { body, etag });
    this.send(ctx, 200, { etag });
  }

  private async completeMultipart(ctx: RequestContext): Promise<void> {
    const upload = this.findUpload(ctx);
    const xml = await readBody(ctx.req);
    checkContentMd5(ctx.req, xml);
    const requested = parseCompleteParts(xml.toString('utf8'));
    const parts = requested.map(({ partNumber, etag }, index) => {
      const previous = requested[index - 1];
      if (previous && previous.partNumber >= partNumber) {
        throw new OssError(400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
      }
      const part = upload.parts.get(partNumber);
      if (!part || normalizeEtag(part.etag) !== normalizeEtag(etag)) {
        throw new OssError(400, 'InvalidPart', 'One or more of the specified parts could not be found or the specified entity tag might not have matched the part\'s entity tag.');
      }
      if (index < requested.length - 1 && part.body.length < MIN_PART_SIZE) {
        throw new OssError(400, 'EntityTooSmall', 'Your proposed upload smaller than the minimum allowed object size.');
      }
      return part;
    });

    const body = Buffer.concat(parts.map((part) => part.body));
    // Like OSS: the MD5 of the concatenated binary part MD5s, suffixed with the part count.
    const partDigests = Buffer.concat(parts.map((part) => Buffer.from(normalizeEtag(part.etag), 'hex')));
    const etag = `"${md5(partDigests).toString('hex').toUpperCase()}-${parts.length}"`;
    this.uploads.delete(ctx.query.get('uploadId') ?? '');
    this.objects.set(objectId(ctx.bucket, ctx.key), { body, contentType: upload.contentType, etag, lastModified: new Date() });
    this.sendXml(ctx, 200, 'CompleteMultipartUploadResult',
      xmlText('Location', `http://${ctx.hostname}/${encodeURIComponent(ctx.key)}`) +
      xmlText('Bucket', ctx.bucket) + xmlText('Key', ctx.key) + xmlText('ETag', etag));
  }

  private abortMultipart(ctx: RequestContext): void {
    this.findUpload(ctx);
    this.uploads.delete(ctx.query.get('uploadId') ?? '');
    this.send(ctx, 204, {});
  }

  private findUpload(ctx: RequestContext): MultipartUpload {
    const upload = this.uploads.get(ctx.query.get('uploadId') ?? '');
    if (!upload || upload.bucket !== ctx.bucket || upload.key !== ctx.key) {
      throw new OssError(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
    }
    return upload;
  }

  private listObjects(ctx: RequestContext): void {
    const { query } = ctx;
    const isV2 = query.get('list-type') === '2';
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = parseMaxKeys(query.get('max-keys'));
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
        xmlText('Type', stored.etag.includes('-') ? 'Multipart' : 'Normal'),
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

  private sortedObjects(bucket: string): Array<[string, StoredObject]> {
    const bucketPrefix = `${bucket}/`;
    return [...this.objects]
      .filter(([id]) => id.startsWith(bucketPrefix))
      .map(([id, stored]): [string, StoredObject] => [id.slice(bucketPrefix.length), stored])
      .sort(([a], [b]) => compareUtf8(a, b));
  }

  private send(ctx: RequestContext, status: number, headers: http.OutgoingHttpHeaders, body?: Buffer | string): void {
    ctx.log.status = status;
    const length = body === undefined ? 0 : Buffer.byteLength(body);
    ctx.res.writeHead(status, { 'content-length': length, ...headers });
    ctx.res.end(body);
  }

  private sendXml(ctx: RequestContext, status: number, root: string, inner: string): void {
    this.send(ctx, status, { 'content-type': 'application/xml' }, xmlDocument(root, inner));
  }

  private sendError(ctx: RequestContext, err: OssError): void {
    const fields = { Code: err.code, Message: err.message, RequestId: ctx.requestId, HostId: ctx.hostname, ...err.details };
    const inner = Object.entries(fields).map(([name, value]) => xmlText(name, value)).join('');
    // Keep the connection usable: a body we did not read must still be drained.
    ctx.req.resume();
    if (ctx.req.method === 'HEAD') {
      // HEAD answers have no body; OSS puts the error document, base64-encoded, in x-oss-err.
      this.send(ctx, err.status, { 'x-oss-err': Buffer.from(xmlDocument('Error', inner)).toString('base64') });
      return;
    }
    this.sendXml(ctx, err.status, 'Error', inner);
  }
}

export async function startOssEmulator(options: OssEmulatorOptions): Promise<OssEmulator> {
  const emulator = new OssEmulatorServer(options);
  await new Promise<void>((resolve, reject) => {
    emulator.server.once('error', reject);
    emulator.server.listen(0, '127.0.0.1', () => resolve());
  });
  emulator.port = (emulator.server.address() as net.AddressInfo).port;
  emulator.endpoint = `http://127.0.0.1:${emulator.port}`;
  return emulator;
}

// ---------------------------------------------------------------- request parsing

function hostnameOf(req: http.IncomingMessage): string {
  const host = headerValue(req, 'host') ?? '';
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
}

/**
 * Fills bucket, key and query. The bucket is the first Host label (virtual-host style, what the SDK
 * sends even to an IP endpoint); a Host that is an IP or a single label (localhost) means path
 * style, `/<bucket>/<key>`.
 */
function parseTarget(ctx: RequestContext): void {
  const url = ctx.req.url ?? '/';
  const queryStart = url.indexOf('?');
  const rawPath = queryStart < 0 ? url : url.slice(0, queryStart);
  const rawQuery = queryStart < 0 ? '' : url.slice(queryStart + 1);
  ctx.log.query = rawQuery;

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

  for (const pair of rawQuery.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq < 0 ? pair : pair.slice(0, eq), true);
    if (!ctx.query.has(name)) ctx.query.set(name, eq < 0 ? '' : decodeComponent(pair.slice(eq + 1), true));
  }
}

/** Decodes one URI component; in a query string '+' also means a space. */
function decodeComponent(raw: string, isQuery = false): string {
  try {
    return decodeURIComponent(isQuery ? raw.replace(/\+/g, ' ') : raw);
  } catch {
    throw new OssError(400, 'InvalidURI', `Couldn't parse the specified URI: ${raw}`);
  }
}

function parseCopySource(header: string): { bucket: string; key: string } {
  const withoutVersion = header.replace(/\?.*$/, '').replace(/^\//, '');
  const slash = withoutVersion.indexOf('/');
  if (slash <= 0) throw new OssError(400, 'InvalidArgument', 'Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.');
  return { bucket: withoutVersion.slice(0, slash), key: decodeComponent(withoutVersion.slice(slash + 1)) };
}

function headerValue(req: http.IncomingMessage, name: string): string | undefined {
  return headerString(req.headers[name]);
}

function headerString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** True when every sub-resource in the query is one of `allowed`. */
function onlySubResources(query: Map<string, string>, allowed: string[]): boolean {
  return [...query.keys()].every((name) => !SUB_RESOURCES.has(name) || allowed.includes(name));
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function checkContentMd5(req: http.IncomingMessage, body: Buffer): void {
  const given = headerValue(req, 'content-md5');
  if (given !== undefined && given !== md5(body).toString('base64')) {
    throw new OssError(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.');
  }
}

function parseMaxKeys(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 100;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 1000) {
    throw new OssError(400, 'InvalidArgument', 'Argument max-keys must be an integer between 0 and 1000.');
  }
  return value;
}

function parseCompleteParts(xml: string): Array<{ partNumber: number; etag: string }> {
  const parts = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((match) => {
    const part = match[1] ?? '';
    return {
      partNumber: Number(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(part)?.[1] ?? NaN),
      etag: unescapeXml(/<ETag>([\s\S]*?)<\/ETag>/.exec(part)?.[1] ?? ''),
    };
  });
  if (parts.length === 0 || parts.some((part) => Number.isNaN(part.partNumber) || !part.etag)) {
    throw new OssError(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
  return parts;
}

// ---------------------------------------------------------------- fault helpers

/**
 * Cuts the connection before any answer: a request with a body once its first bytes arrive,
 * a bodiless one right away. (Once a response head has gone out, ali-oss reports a cut as a
 * status-200 XML parse error rather than as a network error, so no response bytes are sent.)
 */
function resetConnection(req: http.IncomingMessage): void {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody) req.once('data', () => req.socket.destroy());
  else req.socket.destroy();
}

// ---------------------------------------------------------------- signatures

type SignedRequest =
  | { version: 1; accessKeyId: string; signature: string }
  | {
    version: 4; accessKeyId: string; signature: string; timestamp: string; date: string; region: string;
    scope: string; additionalHeaders: string[];
  };

function invalidAuthorization(detail: string): OssError {
  return new OssError(400, 'InvalidArgument', `Authorization header is invalid: ${detail}`);
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

/** encodeURIComponent that also escapes !'()*, as RFC 3986 and OSS V4 require. */
function rfc3986Encode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// ---------------------------------------------------------------- listing

interface ListPage {
  objects: Array<[string, StoredObject]>;
  prefixes: string[];
  truncated: boolean;
  /** The last key or common prefix returned: where the next page starts after. */
  last: string;
}

function listPage(
  sorted: Array<[string, StoredObject]>,
  prefix: string,
  delimiter: string,
  after: string,
  maxKeys: number,
): ListPage {
  const page: ListPage = { objects: [], prefixes: [], truncated: false, last: '' };
  for (const entry of sorted) {
    const [key] = entry;
    if (!key.startsWith(prefix) || compareUtf8(key, after) <= 0) continue;
    const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
    const commonPrefix = cut < 0 ? undefined : key.slice(0, cut + delimiter.length);
    // A common prefix at or before the marker was returned on an earlier page.
    if (commonPrefix !== undefined && (commonPrefix === page.last || compareUtf8(commonPrefix, after) <= 0)) continue;
    if (page.objects.length + page.prefixes.length >= maxKeys) {
      page.truncated = true;
      break;
    }
    if (commonPrefix === undefined) page.objects.push(entry);
    else page.prefixes.push(commonPrefix);
    page.last = commonPrefix ?? key;
  }
  return page;
}

/** OSS orders keys by their UTF-8 bytes, which differs from JS string order for astral characters. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------- small helpers

function objectId(bucket: string, key: string): string {
  return `${bucket}/${key}`;
}

function md5(data: Buffer): Buffer {
  return crypto.createHash('md5').update(data).digest();
}

function sha256Hex(data: string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function quotedEtag(digest: Buffer): string {
  return `"${digest.toString('hex').toUpperCase()}"`;
}

function normalizeEtag(etag: string): string {
  return etag.trim().replace(/^"|"$/g, '').toUpperCase();
}

function noSuchKey(): OssError {
  return new OssError(404, 'NoSuchKey', 'The specified key does not exist.');
}

function notImplemented(): OssError {
  return new OssError(501, 'NotImplemented', 'This operation is not supported by the OSS emulator.');
}

/** `<name>text</name>` with the text escaped. */
function xmlText(name: string, value: string | number | boolean): string {
  const escaped = String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<${name}>${escaped}</${name}>`;
}

function xmlDocument(root: string, innerXml: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${xmlNode(root, innerXml)}`;
}

/** `<name>inner</name>` around markup that is already XML. */
function xmlNode(name: string, innerXml: string): string {
  return `<${name}>${innerXml}</${name}>`;
}

function unescapeXml(text: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (entity, body: string) => {
    if (body.startsWith('#x') || body.startsWith('#X')) return String.fromCodePoint(parseInt(body.slice(2), 16));
    if (body.startsWith('#')) return String.fromCodePoint(Number(body.slice(1)));
    return named[body.toLowerCase()] ?? entity;
  });
}
