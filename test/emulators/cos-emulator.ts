/**
 * In-memory Tencent COS emulator for tests.
 *
 * It speaks the part of the COS XML API that the real `cos-nodejs-sdk-v5` SDK uses for objects (put,
 * get, head, delete, multipart upload including the listings `sliceUploadFile` resumes from, bucket
 * listing), verifies q-sign signatures the way COS does, and can inject faults (error statuses,
 * connection resets, delays, expired temporary keys) so that retry and error paths can be tested
 * against the real SDK. Options, fault semantics and the request log mirror the OSS emulator's.
 * One deliberate difference from COS: Host must be among the signed headers.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';

export interface CosEmulatorOptions {
  secretId: string;
  secretKey: string;
  /** If set, every request must carry `x-cos-security-token` equal to it (a temporary key). */
  sessionToken?: string;
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
   * When turned on, the session token installed at that moment counts as expired: requests
   * carrying it get 403 ExpiredToken, also after setCredentials() installs a new token (which passes).
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

export interface CosCredentials {
  secretId: string;
  secretKey: string;
  sessionToken?: string;
}

export interface CosEmulator {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** `127.0.0.1:PORT`, for the SDK's `Ip` option (which keeps the virtual-host Host header). */
  host: string;
  port: number;
  /** Keyed by `${bucket}/${key}`. */
  objects: Map<string, StoredObject>;
  requests: RequestLogEntry[];
  setFaults(f: Partial<FaultConfig>): void;
  setCredentials(c: CosCredentials): void;
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

/** COS rejects a multipart completion if any part but the last is smaller than this. */
const MIN_PART_SIZE = 1024 * 1024;
/** COS's limit for both max-keys and max-uploads, and their default. */
const MAX_LIST_ENTRIES = 1000;
/** COS answers RequestTimeTooSkewed when the signature starts more than 15 minutes in the future. */
const ALLOWED_CLOCK_SKEW_SECONDS = 15 * 60;
const OWNER_ID = 'qcs::cam::uin/100000000001:uin/100000000001';
const RESPONSE_PARAMS = [
  'response-content-type', 'response-content-language', 'response-expires', 'response-cache-control',
  'response-content-disposition', 'response-content-encoding',
];

/** A COS error answer; thrown by handlers and turned into error XML in one place. */
class CosError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
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
  /** The decoded path, `/<key>`: what the signature covers. */
  path: string;
  key: string;
  /** Decoded query parameters; a parameter given without a value maps to ''. */
  query: Map<string, string>;
  log: RequestLogEntry;
}

interface MultipartUpload {
  uploadId: string;
  bucket: string;
  key: string;
  contentType?: string;
  initiated: Date;
  parts: Map<number, { body: Buffer; etag: string; lastModified: Date }>;
}

/**
 * One operation: matched on method, on whether a key is present and on the query parameters that
 * name it (`required`); any parameter outside `required` and `optional` makes the request a
 * sub-resource (acl, tagging, versionId, ...) the emulator does not implement.
 */
interface Route {
  method: string;
  onKey: boolean;
  required: string[];
  optional: string[];
  handle: (ctx: RequestContext) => void | Promise<void>;
}

class CosEmulatorServer implements CosEmulator {
  endpoint = '';
  host = '';
  port = 0;
  readonly objects = new Map<string, StoredObject>();
  readonly requests: RequestLogEntry[] = [];
  private readonly uploads = new Map<string, MultipartUpload>();
  private readonly expiredTokens = new Set<string | undefined>();
  private faults: FaultConfig = { ...DEFAULT_FAULTS };
  private credentials: CosCredentials;
  private readonly routes: Route[];
  readonly server: http.Server;

  constructor(options: CosEmulatorOptions) {
    this.credentials = { secretId: options.secretId, secretKey: options.secretKey, sessionToken: options.sessionToken };
    this.setFaults(options.faults ?? {});
    const route = (method: string, onKey: boolean, required: string[], optional: string[], handle: Route['handle']): Route =>
      ({ method, onKey, required, optional, handle: handle.bind(this) });
    this.routes = [
      route('GET', false, ['uploads'], ['prefix', 'delimiter', 'key-marker', 'upload-id-marker', 'max-uploads'], this.listMultipartUploads),
      route('GET', false, [], ['prefix', 'delimiter', 'marker', 'max-keys'], this.listObjects),
      route('POST', true, ['uploads'], [], this.initiateMultipart),
      route('PUT', true, ['partNumber', 'uploadId'], [], this.uploadPart),
      route('GET', true, ['uploadId'], ['max-parts', 'part-number-marker'], this.listParts),
      route('POST', true, ['uploadId'], [], this.completeMultipart),
      route('DELETE', true, ['uploadId'], [], this.abortMultipart),
      route('PUT', true, [], [], this.putObject),
      route('GET', true, [], RESPONSE_PARAMS, this.getObjectResponse),
      route('HEAD', true, [], [], this.getObjectResponse),
      route('DELETE', true, [], [], this.deleteObject),
    ];
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  setFaults(f: Partial<FaultConfig>): void {
    this.faults = { ...this.faults, ...f };
    if (f.expiredTokenUntilRefresh === true) this.expiredTokens.add(this.credentials.sessionToken);
    if (f.expiredTokenUntilRefresh === false) this.expiredTokens.clear();
  }

  setCredentials(c: CosCredentials): void {
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
    const requestId = newRequestId();
    // Every COS answer carries it; the SDK copies it into results and errors as RequestId.
    res.setHeader('x-cos-request-id', requestId);
    res.setHeader('server', 'tencent-cos');
    const log: RequestLogEntry = { method: req.method ?? '', bucket: '', key: '', query: '', status: 0 };
    this.requests.push(log);
    const ctx: RequestContext = {
      req, res, requestId, log, hostname: hostnameOf(req), bucket: '', path: '/', key: '', query: new Map(),
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
      this.sendError(ctx, err instanceof CosError ? err : new CosError(500, 'InternalError', String(err)));
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
      throw new CosError(status, INJECTED_ERROR_CODES[status] ?? 'InjectedFault', 'Injected fault.');
    }
    if (this.expiredTokens.has(headerValue(ctx.req, 'x-cos-security-token'))) {
      record('expiredToken');
      // COS's error-code table (cloud.tencent.com/document/product/436/7730) lists ExpiredToken as
      // 403 Forbidden. (Tencent's flare COS client maps it under 400; either way it is a 4xx, which
      // the SDK never retries, so a caller sees the same behaviour.)
      throw new CosError(403, 'ExpiredToken', 'The provided token has expired.');
    }
    return false;
  }

  private authenticate(ctx: RequestContext): void {
    const { req } = ctx;
    const authorization = headerValue(req, 'authorization');
    if (!authorization) throw new CosError(403, 'AccessDenied', 'Access Denied.');
    const signed = parseAuthorization(authorization);

    const creds = this.credentials;
    if (signed.secretId !== creds.secretId) {
      throw new CosError(403, 'InvalidAccessKeyId', 'The Access Key Id you provided does not exist in our records.');
    }
    const token = headerValue(req, 'x-cos-security-token');
    if (token !== creds.sessionToken) {
      // A temporary SecretId is only valid together with its token, so a missing or wrong token
      // means the key itself is not recognised.
      const message = token === undefined
        ? 'The Access Key Id you provided does not exist in our records.'
        : 'The security token you provided is invalid.';
      throw new CosError(403, 'InvalidAccessKeyId', message);
    }
    // Stricter than COS, which accepts an unsigned Host: the SDK signs it unless told not to
    // (ForceSignHost: false), and without it a signature could be replayed against another bucket.
    if (!signed.headerList.includes('host')) {
      throw new CosError(403, 'AccessDenied', 'The Host header must be signed (q-header-list).');
    }

    const stringToSign = signatureStringToSign(req.method ?? '', ctx.path, ctx.query, req.headers, signed);
    const signKey = hmacSha1Hex(creds.secretKey, signed.keyTime);
    if (hmacSha1Hex(signKey, stringToSign) !== signed.signature) {
      throw new CosError(403, 'SignatureDoesNotMatch', 'The Signature you specified is invalid.');
    }

    // Checked after the signature, with the messages the SDK recognises: on either of these it
    // resets its clock offset from our Date header and retries (CorrectClockSkew, on by default).
    const now = Date.now() / 1000;
    if (now > signed.signEnd) throw new CosError(403, 'AccessDenied', 'Request has expired');
    if (signed.signStart > now + ALLOWED_CLOCK_SKEW_SECONDS) {
      throw new CosError(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
    }
  }

  private async route(ctx: RequestContext): Promise<void> {
    const method = ctx.req.method;
    const names = [...ctx.query.keys()];
    const route = this.routes.find((r) =>
      r.method === method &&
      r.onKey === (ctx.key !== '') &&
      r.required.every((name) => ctx.query.has(name)) &&
      names.every((name) => r.required.includes(name) || r.optional.includes(name)));
    if (!route) throw notImplemented();
    await route.handle(ctx);
  }

  private async putObject(ctx: RequestContext): Promise<void> {
    if (headerValue(ctx.req, 'x-cos-copy-source') !== undefined) throw notImplemented();
    const body = await readBody(ctx.req);
    checkContentMd5(ctx.req, body);
    const stored: StoredObject = {
      body,
      contentType: headerValue(ctx.req, 'content-type') || undefined,
      etag: quotedEtag(md5(body)),
      lastModified: new Date(),
    };
    this.objects.set(objectId(ctx.bucket, ctx.key), stored);
    this.send(ctx, 200, { etag: stored.etag });
  }

  private getObjectResponse(ctx: RequestContext): void {
    const stored = this.objects.get(objectId(ctx.bucket, ctx.key));
    if (!stored) throw new CosError(404, 'NoSuchKey', 'The specified key does not exist.');
    this.send(ctx, 200, {
      'content-type': ctx.query.get('response-content-type') ?? stored.contentType ?? 'application/octet-stream',
      'content-length': stored.body.length,
      etag: stored.etag,
      'last-modified': stored.lastModified.toUTCString(),
      'accept-ranges': 'bytes',
      'x-cos-storage-class': 'STANDARD',
    }, stored.body);
  }

  private deleteObject(ctx: RequestContext): void {
    this.objects.delete(objectId(ctx.bucket, ctx.key));
    this.send(ctx, 204, {});
  }

  private initiateMultipart(ctx: RequestContext): void {
    // Shaped like COS upload IDs: a Unix timestamp followed by hex.
    const uploadId = `${Math.floor(Date.now() / 1000)}${crypto.randomBytes(24).toString('hex')}`;
    this.uploads.set(uploadId, {
      uploadId,
      bucket: ctx.bucket,
      key: ctx.key,
      // The SDK sends an empty Content-Type when it has none.
      contentType: headerValue(ctx.req, 'content-type') || undefined,
      initiated: new Date(),
      parts: new Map(),
    });
    this.sendXml(ctx, 200, 'InitiateMultipartUploadResult',
      xmlText('Bucket', ctx.bucket) + xmlText('Key', ctx.key) + xmlText('UploadId', uploadId));
  }

  private async uploadPart(ctx: RequestContext): Promise<void> {
    const upload = this.findUpload(ctx);
    const partNumber = Number(ctx.query.get('partNumber'));
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
      throw new CosError(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive.');
    }
    const body = await readBody(ctx.req);
    checkContentMd5(ctx.req, body);
    const etag = quotedEtag(md5(body));
    upload.parts.set(partNumber, { body, etag, lastModified: new Date() });
    this.send(ctx, 200, { etag });
  }

  /** GET ?uploadId: sliceUploadFile compares these ETags and sizes with its file to resume. */
  private listParts(ctx: RequestContext): void {
    const upload = this.findUpload(ctx);
    const maxParts = parseListLimit(ctx.query.get('max-parts'), 'max-parts');
    const marker = Number(ctx.query.get('part-number-marker') ?? 0) || 0;
    const after = [...upload.parts].filter(([n]) => n > marker).sort(([a], [b]) => a - b);
    const page = after.slice(0, maxParts);
    const truncated = after.length > page.length;
    const parts = page.map(([n, part]) => xmlNode('Part', xmlText('PartNumber', n) +
      xmlText('LastModified', part.lastModified.toISOString()) + xmlText('ETag', part.etag) + xmlText('Size', part.body.length)));
    this.sendXml(ctx, 200, 'ListPartsResult', [
      xmlText('Bucket', ctx.bucket), xmlText('Key', ctx.key), xmlText('UploadId', upload.uploadId),
      ownerXml('Initiator'), ownerXml('Owner'), xmlText('StorageClass', 'STANDARD'),
      xmlText('PartNumberMarker', marker), xmlText('MaxParts', maxParts), xmlText('IsTruncated', truncated),
      truncated ? xmlText('NextPartNumberMarker', page.at(-1)?.[0] ?? marker) : '',
      ...parts,
    ].join(''));
  }

  private async completeMultipart(ctx: RequestContext): Promise<void> {
    const upload = this.findUpload(ctx);
    const xml = await readBody(ctx.req);
    checkContentMd5(ctx.req, xml);
    const requested = parseCompleteParts(xml.toString('utf8'));
    const parts = requested.map(({ partNumber, etag }, index) => {
      const previous = requested[index - 1];
      if (previous && previous.partNumber >= partNumber) {
        throw new CosError(400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
      }
      const part = upload.parts.get(partNumber);
      if (!part || normalizeEtag(part.etag) !== normalizeEtag(etag)) {
        throw new CosError(400, 'InvalidPart', 'One or more of the specified parts could not be found or the specified entity tag might not have matched the part\'s entity tag.');
      }
      if (index < requested.length - 1 && part.body.length < MIN_PART_SIZE) {
        throw new CosError(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.');
      }
      return part;
    });

    const body = Buffer.concat(parts.map((part) => part.body));
    // Like COS (and S3): the MD5 of the concatenated binary part MD5s, suffixed with the part count.
    const partDigests = Buffer.concat(parts.map((part) => Buffer.from(normalizeEtag(part.etag), 'hex')));
    const etag = `"${md5(partDigests).toString('hex')}-${parts.length}"`;
    this.uploads.delete(upload.uploadId);
    this.objects.set(objectId(ctx.bucket, ctx.key), { body, contentType: upload.contentType, etag, lastModified: new Date() });
    this.sendXml(ctx, 200, 'CompleteMultipartUploadResult',
      xmlText('Location', `${ctx.hostname}${encodeKeyPath(ctx.key)}`) +
      xmlText('Bucket', ctx.bucket) + xmlText('Key', ctx.key) + xmlText('ETag', etag));
  }

  private abortMultipart(ctx: RequestContext): void {
    this.uploads.delete(this.findUpload(ctx).uploadId);
    this.send(ctx, 204, {});
  }

  private findUpload(ctx: RequestContext): MultipartUpload {
    const upload = this.uploads.get(ctx.query.get('uploadId') ?? '');
    if (!upload || upload.bucket !== ctx.bucket || upload.key !== ctx.key) {
      throw new CosError(404, 'NoSuchUpload', 'The specified upload does not exist.');
    }
    return upload;
  }

  /** GET /?uploads: sliceUploadFile's first request, looking for an upload of the same key to resume. */
  private listMultipartUploads(ctx: RequestContext): void {
    const { query } = ctx;
    // The SDK's typings make callers pass a Delimiter, so an empty one must work; grouping uploads
    // into common prefixes is not implemented.
    if (query.get('delimiter')) throw notImplemented();
    const prefix = query.get('prefix') ?? '';
    const keyMarker = query.get('key-marker') ?? '';
    const uploadIdMarker = query.get('upload-id-marker') ?? '';
    const maxUploads = parseListLimit(query.get('max-uploads'), 'max-uploads');
    const pending = [...this.uploads.values()]
      .filter((u) => u.bucket === ctx.bucket && u.key.startsWith(prefix))
      .sort((a, b) => compareUtf8(a.key, b.key) || compareStrings(a.uploadId, b.uploadId))
      .filter((u) => {
        const byKey = compareUtf8(u.key, keyMarker);
        return byKey > 0 || (byKey === 0 && uploadIdMarker !== '' && compareStrings(u.uploadId, uploadIdMarker) > 0);
      });
    const page = pending.slice(0, maxUploads);
    const last = page.at(-1);
    const truncated = pending.length > page.length;
    const entries = page.map((u) => xmlNode('Upload', [
      xmlText('Key', u.key), xmlText('UploadId', u.uploadId), xmlText('StorageClass', 'STANDARD'),
      ownerXml('Initiator'), ownerXml('Owner'), xmlText('Initiated', u.initiated.toISOString()),
    ].join('')));
    this.sendXml(ctx, 200, 'ListMultipartUploadsResult', [
      xmlText('Bucket', ctx.bucket), xmlText('Prefix', prefix), xmlText('KeyMarker', keyMarker),
      xmlText('UploadIdMarker', uploadIdMarker), xmlText('MaxUploads', maxUploads), xmlText('IsTruncated', truncated),
      truncated && last ? xmlText('NextKeyMarker', last.key) + xmlText('NextUploadIdMarker', last.uploadId) : '',
      ...entries,
    ].join(''));
  }

  private listObjects(ctx: RequestContext): void {
    const { query } = ctx;
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const marker = query.get('marker') ?? '';
    const maxKeys = parseListLimit(query.get('max-keys'), 'max-keys');
    const page = listPage(this.sortedObjects(ctx.bucket), prefix, delimiter, marker, maxKeys);

    const contents = page.objects.map(([key, stored]) => xmlNode('Contents', [
      xmlText('Key', key),
      xmlText('LastModified', stored.lastModified.toISOString()),
      xmlText('ETag', stored.etag),
      xmlText('Size', stored.body.length),
      ownerXml('Owner'),
      xmlText('StorageClass', 'STANDARD'),
    ].join('')));
    const commonPrefixes = page.prefixes.map((p) => xmlNode('CommonPrefixes', xmlText('Prefix', p)));
    this.sendXml(ctx, 200, 'ListBucketResult', [
      xmlText('Name', ctx.bucket), xmlText('Prefix', prefix), xmlText('Marker', marker), xmlText('MaxKeys', maxKeys),
      delimiter ? xmlText('Delimiter', delimiter) : '', xmlText('IsTruncated', page.truncated),
      page.truncated ? xmlText('NextMarker', page.last) : '',
      ...contents, ...commonPrefixes,
    ].join(''));
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
    // A HEAD answer announces the object's length but sends no bytes.
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
  }

  private sendXml(ctx: RequestContext, status: number, root: string, inner: string): void {
    this.send(ctx, status, { 'content-type': 'application/xml' }, xmlDocument(root, inner));
  }

  private sendError(ctx: RequestContext, err: CosError): void {
    // Keep the connection usable: a body we did not read must still be drained.
    ctx.req.resume();
    if (ctx.req.method === 'HEAD') {
      // COS answers HEAD errors without a body; the SDK then reports the status as the code.
      this.send(ctx, err.status, {});
      return;
    }
    const fields = {
      Code: err.code,
      Message: err.message,
      Resource: `${ctx.hostname}${encodeKeyPath(ctx.key)}`,
      RequestId: ctx.requestId,
      TraceId: crypto.randomBytes(48).toString('base64'),
    };
    this.sendXml(ctx, err.status, 'Error', Object.entries(fields).map(([name, value]) => xmlText(name, value)).join(''));
  }
}

export async function startCosEmulator(options: CosEmulatorOptions): Promise<CosEmulator> {
  const emulator = new CosEmulatorServer(options);
  await new Promise<void>((resolve, reject) => {
    emulator.server.once('error', reject);
    emulator.server.listen(0, '127.0.0.1', () => resolve());
  });
  emulator.port = (emulator.server.address() as net.AddressInfo).port;
  emulator.host = `127.0.0.1:${emulator.port}`;
  emulator.endpoint = `http://${emulator.host}`;
  return emulator;
}

// ---------------------------------------------------------------- request parsing

function hostnameOf(req: http.IncomingMessage): string {
  const host = headerValue(req, 'host') ?? '';
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
}

/**
 * Fills bucket, path, key and query. The bucket is the first Host label, as in
 * `<name>-<appid>.cos.<region>.myqcloud.com`: the SDK has no path style (ForcePathStyle throws), and
 * with the `Ip` option it still sends that Host.
 */
function parseTarget(ctx: RequestContext): void {
  const url = ctx.req.url ?? '/';
  const queryStart = url.indexOf('?');
  const rawPath = queryStart < 0 ? url : url.slice(0, queryStart);
  const rawQuery = queryStart < 0 ? '' : url.slice(queryStart + 1);
  ctx.log.query = rawQuery;

  ctx.bucket = ctx.hostname.split('.')[0] ?? '';
  ctx.log.bucket = ctx.bucket;
  if (!/^[a-z0-9-]+-\d+$/.test(ctx.bucket)) {
    throw new CosError(400, 'InvalidBucketName', 'The Host must start with the bucket, <name>-<appid>, as in <name>-<appid>.cos.<region>.myqcloud.com.');
  }
  ctx.path = decodeComponent(rawPath);
  ctx.key = ctx.path.replace(/^\//, '');
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
    throw new CosError(400, 'InvalidURI', `Couldn't parse the specified URI: ${raw}`);
  }
}

function headerValue(req: http.IncomingMessage, name: string): string | undefined {
  return headerString(req.headers[name]);
}

function headerString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** COS's codes: InvalidDigest for a Content-MD5 that is not an MD5 at all, BadDigest for a mismatch. */
function checkContentMd5(req: http.IncomingMessage, body: Buffer): void {
  const given = headerValue(req, 'content-md5');
  if (given === undefined) return;
  if (Buffer.from(given, 'base64').length !== 16) {
    throw new CosError(400, 'InvalidDigest', 'The Content-MD5 you specified is not valid.');
  }
  if (given !== md5(body).toString('base64')) {
    throw new CosError(400, 'BadDigest', 'The Content-MD5 you specified did not match what was received.');
  }
}

function parseListLimit(raw: string | undefined, name: string): number {
  if (raw === undefined || raw === '') return MAX_LIST_ENTRIES;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > MAX_LIST_ENTRIES) {
    throw new CosError(400, 'InvalidArgument', `Argument ${name} must be an integer between 0 and ${MAX_LIST_ENTRIES}.`);
  }
  return value;
}

/** `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;…&quot;</ETag></Part>…` */
function parseCompleteParts(xml: string): Array<{ partNumber: number; etag: string }> {
  const parts = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((match) => {
    const part = match[1] ?? '';
    return {
      partNumber: Number(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(part)?.[1] ?? NaN),
      etag: unescapeXml(/<ETag>([\s\S]*?)<\/ETag>/.exec(part)?.[1] ?? ''),
    };
  });
  if (parts.length === 0 || parts.some((part) => Number.isNaN(part.partNumber) || !part.etag)) {
    throw new CosError(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
  return parts;
}

// ---------------------------------------------------------------- fault helpers

/**
 * Cuts the connection before any answer: a request with a body once its first bytes arrive, a
 * bodiless one right away. The SDK sees a network error without a status code.
 */
function resetConnection(req: http.IncomingMessage): void {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody) req.once('data', () => req.socket.destroy());
  else req.socket.destroy();
}

// ---------------------------------------------------------------- signatures

interface QSignature {
  secretId: string;
  signStart: number;
  signEnd: number;
  signTime: string;
  keyTime: string;
  /** Lowercased, encoded names, in the order they were signed. */
  headerList: string[];
  paramList: string[];
  signature: string;
}

/**
 * `q-sign-algorithm=sha1&q-ak=…&q-sign-time=t0;t1&q-key-time=t0;t1&q-header-list=a;b&q-url-param-list=c&q-signature=…`
 */
function parseAuthorization(header: string): QSignature {
  const fields = new Map(header.split('&').map((field) => {
    const eq = field.indexOf('=');
    return eq < 0 ? [field, ''] as const : [field.slice(0, eq), field.slice(eq + 1)] as const;
  }));
  const secretId = fields.get('q-ak');
  const signTime = fields.get('q-sign-time');
  const keyTime = fields.get('q-key-time');
  const signature = fields.get('q-signature');
  const [signStart, signEnd] = (signTime ?? '').split(';').map(Number);
  if (
    fields.get('q-sign-algorithm') !== 'sha1' || !secretId || !keyTime || !signature ||
    !Number.isInteger(signStart) || !Number.isInteger(signEnd) ||
    fields.get('q-header-list') === undefined || fields.get('q-url-param-list') === undefined
  ) {
    throw new CosError(403, 'AccessDenied', 'The Authorization header is not a valid q-sign-algorithm=sha1 signature.');
  }
  const list = (name: string) => (fields.get(name) ?? '').split(';').filter(Boolean);
  return {
    secretId, signStart: signStart ?? 0, signEnd: signEnd ?? 0, signTime: signTime ?? '', keyTime,
    headerList: list('q-header-list'), paramList: list('q-url-param-list'), signature,
  };
}

/**
 * `sha1\n<q-sign-time>\n<sha1hex(HttpString)>\n`, where HttpString is the lowercased method, the
 * decoded path, then the signed query parameters and headers as `name=enc(value)` joined by '&',
 * each part followed by '\n'. Values come from the request, looked up by the listed names.
 */
function signatureStringToSign(
  method: string,
  path: string,
  query: Map<string, string>,
  headers: http.IncomingHttpHeaders,
  signed: QSignature,
): string {
  const byEncodedName = (entries: Iterable<[string, string | string[] | undefined]>) =>
    new Map([...entries].map(([name, value]) => [cosEncode(name).toLowerCase(), headerString(value) ?? ''] as const));
  const params = byEncodedName(query);
  const headerValues = byEncodedName(Object.entries(headers));
  const pairs = (names: string[], values: Map<string, string>) =>
    names.map((name) => `${name}=${cosEncode(values.get(name) ?? '')}`).join('&');
  const httpString = [method.toLowerCase(), path, pairs(signed.paramList, params), pairs(signed.headerList, headerValues), ''].join('\n');
  const digest = crypto.createHash('sha1').update(httpString, 'utf8').digest('hex');
  return ['sha1', signed.signTime, digest, ''].join('\n');
}

function hmacSha1Hex(key: string, data: string): string {
  return crypto.createHmac('sha1', key).update(data, 'utf8').digest('hex');
}

/** encodeURIComponent that also escapes !'()*, as the COS signature requires. */
function cosEncode(value: string): string {
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

/** COS orders keys by their UTF-8 bytes, which differs from JS string order for astral characters. */
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

/** COS request ids are base64 of `<hex unix time>_<hex>_<hex>_<hex>`. */
function newRequestId(): string {
  const hex = (bytes: number) => crypto.randomBytes(bytes).toString('hex');
  return Buffer.from(`${Math.floor(Date.now() / 1000).toString(16)}_${hex(4)}_${hex(2)}_${hex(4)}`).toString('base64');
}

function encodeKeyPath(key: string): string {
  return `/${cosEncode(key).replace(/%2F/g, '/')}`;
}

function md5(data: Buffer): Buffer {
  return crypto.createHash('md5').update(data).digest();
}

/** COS ETags are the quoted lowercase hex MD5; sliceUploadFile compares part ETags with exactly that. */
function quotedEtag(digest: Buffer): string {
  return `"${digest.toString('hex')}"`;
}

function normalizeEtag(etag: string): string {
  return etag.trim().replace(/^"|"$/g, '').toLowerCase();
}

function notImplemented(): CosError {
  return new CosError(501, 'NotImplemented', 'This operation is not supported by the COS emulator.');
}

function ownerXml(name: string): string {
  return xmlNode(name, xmlText('ID', OWNER_ID) + xmlText('DisplayName', '100000000001'));
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
