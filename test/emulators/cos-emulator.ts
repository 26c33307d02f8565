/**
 * In-memory Tencent COS emulator for tests.
 *
 * It speaks the part of the COS XML API that the real `cos-nodejs-sdk-v5` SDK uses for objects (put,
 * get, head, delete, append, multipart upload including the listings `sliceUploadFile` resumes
 * from, bucket listing), verifies q-sign signatures the way COS does, and can inject faults (error
 * statuses, connection resets, lost answers, delays, outages, refused appends, expired temporary
 * keys, answered with 403 ExpiredToken) so that retry and error paths can be tested against the
 * real SDK. Options, fault semantics and the request log are the OSS emulator's; the code both
 * share lives in emulator-kit.ts.
 * Deliberate differences from COS: Host must be among the signed headers, and so must an append's
 * `append` and `position` parameters.
 */
import * as crypto from 'node:crypto';
import type * as http from 'node:http';
import {
  ApiError, EmulatorServer, compareStrings, compareUtf8, decodeComponent, headerString, headerValue,
  listPage, md5, noSuchKey, objectId, parseListLimit, readBody, rfc3986Encode, xmlFields, xmlNode,
  xmlText, type CloudDialect, type FaultConfig, type RequestContext, type RequestLogEntry,
  type StoredObject,
} from './emulator-kit';

export type { FaultConfig, RequestLogEntry, StoredObject } from './emulator-kit';

export interface CosEmulatorOptions {
  secretId: string;
  secretKey: string;
  /** If set, every request must carry `x-cos-security-token` equal to it (a temporary key). */
  sessionToken?: string;
  faults?: Partial<FaultConfig>;
  /** Listen on this port of 127.0.0.1 (npm run emulators); default any free one. */
  port?: number;
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
  /** Every request answered 503 while on. */
  setOutage(on: boolean): void;
  setCredentials(c: CosCredentials): void;
  getObject(bucket: string, key: string): Buffer | undefined;
  listKeys(bucket: string, prefix?: string): string[];
  close(): Promise<void>;
}

/** COS's limit for both max-keys and max-uploads, and their default. */
const MAX_LIST_ENTRIES = 1000;
/** COS answers RequestTimeTooSkewed when the signature starts more than 15 minutes in the future. */
const ALLOWED_CLOCK_SKEW_SECONDS = 15 * 60;
const OWNER_ID = 'qcs::cam::uin/100000000001:uin/100000000001';
const RESPONSE_PARAMS = [
  'response-content-type', 'response-content-language', 'response-expires', 'response-cache-control',
  'response-content-disposition', 'response-content-encoding',
];

const COS_DIALECT: CloudDialect = {
  name: 'COS',
  requestIdHeader: 'x-cos-request-id',
  serverHeader: 'tencent-cos',
  newRequestId,
  tokenHeader: 'x-cos-security-token',
  // COS's error-code table (cloud.tencent.com/document/product/436/7730) lists ExpiredToken as
  // 403 Forbidden. (Tencent's flare COS client maps it under 400; either way it is a 4xx, which
  // the SDK never retries, so a caller sees the same behaviour.)
  expiredTokenError: () => new ApiError(403, 'ExpiredToken', 'The provided token has expired.'),
  // COS ETags are the quoted lowercase hex MD5; sliceUploadFile compares part ETags with exactly that.
  upperCaseEtags: false,
  minPartSize: 1024 * 1024,
  noSuchUploadMessage: 'The specified upload does not exist.',
  entityTooSmallMessage: 'Your proposed upload is smaller than the minimum allowed object size.',
  checkContentMd5,
  objectLocation: (hostname, key) => `${hostname}${encodeKeyPath(key)}`,
  nextAppendPositionHeader: 'x-cos-next-append-position',
  // COS documents that multi-AZ buckets (and Intelligent Tiering) take no appends and that
  // appendable objects stay out of versioning, but not the code it answers then; the code it
  // documents for "this key takes no append" is 409 ObjectNotAppendable (436/7741).
  appendsRefusedError: () => new ApiError(409, 'ObjectNotAppendable', 'The object is not appendable.'),
};

interface CosRequestContext extends RequestContext {
  /** The decoded path, `/<key>`: what the signature covers. */
  path: string;
  /** q-url-param-list of the request's signature. */
  signedParams: string[];
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
  handle: (ctx: CosRequestContext) => void | Promise<void>;
}

class CosEmulatorServer extends EmulatorServer<CosRequestContext> implements CosEmulator {
  host = '';
  private credentials: CosCredentials;
  private readonly routes: Route[];

  constructor(options: CosEmulatorOptions) {
    super(COS_DIALECT);
    this.credentials = { secretId: options.secretId, secretKey: options.secretKey, sessionToken: options.sessionToken };
    this.setFaults(options.faults ?? {});
    const route = (method: string, onKey: boolean, required: string[], optional: string[], handle: Route['handle']): Route =>
      ({ method, onKey, required, optional, handle: handle.bind(this) });
    this.routes = [
      route('GET', false, ['uploads'], ['prefix', 'delimiter', 'key-marker', 'upload-id-marker', 'max-uploads'], this.listMultipartUploads),
      route('GET', false, [], ['prefix', 'delimiter', 'marker', 'max-keys'], this.listObjects),
      route('POST', true, ['append'], ['position'], this.appendSigned),
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
  }

  setCredentials(c: CosCredentials): void {
    // Tokens marked expired stay expired; the new one passes unless it is the same token.
    this.credentials = { ...c };
  }

  protected override currentToken(): string | undefined {
    return this.credentials.sessionToken;
  }

  protected override newContext(base: RequestContext): CosRequestContext {
    return { ...base, path: '/', signedParams: [] };
  }

  /**
   * The bucket is the first Host label, as in `<name>-<appid>.cos.<region>.myqcloud.com`: the SDK
   * has no path style (ForcePathStyle throws), and with the `Ip` option it still sends that Host.
   */
  protected override locate(ctx: CosRequestContext, rawPath: string): void {
    ctx.bucket = ctx.hostname.split('.')[0] ?? '';
    ctx.log.bucket = ctx.bucket;
    if (!/^[a-z0-9-]+-\d+$/.test(ctx.bucket)) {
      throw new ApiError(400, 'InvalidBucketName', 'The Host must start with the bucket, <name>-<appid>, as in <name>-<appid>.cos.<region>.myqcloud.com.');
    }
    ctx.path = decodeComponent(rawPath);
    ctx.key = ctx.path.replace(/^\//, '');
    ctx.log.key = ctx.key;
  }

  protected override authenticate(ctx: CosRequestContext): void {
    const { req } = ctx;
    const authorization = headerValue(req, 'authorization');
    if (!authorization) throw new ApiError(403, 'AccessDenied', 'Access Denied.');
    const signed = parseAuthorization(authorization);
    ctx.signedParams = signed.paramList;

    const creds = this.credentials;
    if (signed.secretId !== creds.secretId) {
      throw new ApiError(403, 'InvalidAccessKeyId', 'The Access Key Id you provided does not exist in our records.');
    }
    const token = headerValue(req, 'x-cos-security-token');
    if (token !== creds.sessionToken) {
      // A temporary SecretId is only valid together with its token, so a missing or wrong token
      // means the key itself is not recognised.
      const message = token === undefined
        ? 'The Access Key Id you provided does not exist in our records.'
        : 'The security token you provided is invalid.';
      throw new ApiError(403, 'InvalidAccessKeyId', message);
    }
    // Stricter than COS, which accepts an unsigned Host: the SDK signs it unless told not to
    // (ForceSignHost: false), and without it a signature could be replayed against another bucket.
    if (!signed.headerList.includes('host')) {
      throw new ApiError(403, 'AccessDenied', 'The Host header must be signed (q-header-list).');
    }

    const stringToSign = signatureStringToSign(req.method ?? '', ctx.path, ctx.query, req.headers, signed);
    const signKey = hmacSha1Hex(creds.secretKey, signed.keyTime);
    if (hmacSha1Hex(signKey, stringToSign) !== signed.signature) {
      throw new ApiError(403, 'SignatureDoesNotMatch', 'The Signature you specified is invalid.');
    }

    // Checked after the signature, with the messages the SDK recognises: on either of these it
    // resets its clock offset from our Date header and retries (CorrectClockSkew, on by default).
    const now = Date.now() / 1000;
    if (now > signed.signEnd) throw new ApiError(403, 'AccessDenied', 'Request has expired');
    if (signed.signStart > now + ALLOWED_CLOCK_SKEW_SECONDS) {
      throw new ApiError(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
    }
  }

  protected override async route(ctx: CosRequestContext): Promise<void> {
    const method = ctx.req.method;
    const names = [...ctx.query.keys()];
    const route = this.routes.find((r) =>
      r.method === method &&
      r.onKey === (ctx.key !== '') &&
      r.required.every((name) => ctx.query.has(name)) &&
      names.every((name) => r.required.includes(name) || r.optional.includes(name)));
    if (!route) throw this.notImplemented();
    await route.handle(ctx);
  }

  private async putObject(ctx: CosRequestContext): Promise<void> {
    if (headerValue(ctx.req, 'x-cos-copy-source') !== undefined) throw this.notImplemented();
    const body = await readBody(ctx.req);
    checkContentMd5(ctx.req, body);
    const stored: StoredObject = {
      body,
      contentType: headerValue(ctx.req, 'content-type') || undefined,
      etag: this.quotedEtag(md5(body)),
      lastModified: new Date(),
    };
    this.objects.set(objectId(ctx.bucket, ctx.key), stored);
    this.send(ctx, 200, { etag: stored.etag });
  }

  /**
   * Stricter than COS: an unsigned position could be changed in transit, landing the bytes
   * elsewhere; the SDK signs every query parameter.
   */
  private async appendSigned(ctx: CosRequestContext): Promise<void> {
    if (!ctx.signedParams.includes('append') || (ctx.query.has('position') && !ctx.signedParams.includes('position'))) {
      throw new ApiError(403, 'AccessDenied', 'The append and position parameters must be signed (q-url-param-list).');
    }
    await this.appendObject(ctx);
  }

  private getObjectResponse(ctx: CosRequestContext): void {
    const stored = this.objects.get(objectId(ctx.bucket, ctx.key));
    if (!stored) throw noSuchKey();
    this.send(ctx, 200, {
      'content-type': ctx.query.get('response-content-type') ?? stored.contentType ?? 'application/octet-stream',
      'content-length': stored.body.length,
      etag: stored.etag,
      'last-modified': stored.lastModified.toUTCString(),
      'accept-ranges': 'bytes',
      'x-cos-object-type': stored.appendable ? 'appendable' : 'normal',
      'x-cos-storage-class': 'STANDARD',
    }, stored.body);
  }

  private initiateMultipart(ctx: CosRequestContext): void {
    // Shaped like COS upload IDs: a Unix timestamp followed by hex.
    const uploadId = `${Math.floor(Date.now() / 1000)}${crypto.randomBytes(24).toString('hex')}`;
    // The SDK sends an empty Content-Type when it has none.
    this.startUpload(ctx, uploadId, headerValue(ctx.req, 'content-type') || undefined);
  }

  /** GET ?uploadId: sliceUploadFile compares these ETags and sizes with its file to resume. */
  private listParts(ctx: CosRequestContext): void {
    const upload = this.findUpload(ctx);
    const maxParts = parseListLimit(ctx.query.get('max-parts'), 'max-parts', MAX_LIST_ENTRIES);
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

  /** GET /?uploads: sliceUploadFile's first request, looking for an upload of the same key to resume. */
  private listMultipartUploads(ctx: CosRequestContext): void {
    const { query } = ctx;
    // The SDK's typings make callers pass a Delimiter, so an empty one must work; grouping uploads
    // into common prefixes is not implemented.
    if (query.get('delimiter')) throw this.notImplemented();
    const prefix = query.get('prefix') ?? '';
    const keyMarker = query.get('key-marker') ?? '';
    const uploadIdMarker = query.get('upload-id-marker') ?? '';
    const maxUploads = parseListLimit(query.get('max-uploads'), 'max-uploads', MAX_LIST_ENTRIES);
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

  private listObjects(ctx: CosRequestContext): void {
    const { query } = ctx;
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const marker = query.get('marker') ?? '';
    const maxKeys = parseListLimit(query.get('max-keys'), 'max-keys', MAX_LIST_ENTRIES);
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

  protected override sendError(ctx: CosRequestContext, err: ApiError): void {
    // Keep the connection usable: a body we did not read must still be drained.
    ctx.req.resume();
    if (ctx.req.method === 'HEAD') {
      // COS answers HEAD errors without a body; the SDK then reports the status as the code.
      this.send(ctx, err.status, err.headers);
      return;
    }
    const fields = {
      Code: err.code,
      Message: err.message,
      Resource: `${ctx.hostname}${encodeKeyPath(ctx.key)}`,
      RequestId: ctx.requestId,
      TraceId: crypto.randomBytes(48).toString('base64'),
    };
    this.sendXml(ctx, err.status, 'Error', xmlFields(fields), err.headers);
  }
}

export async function startCosEmulator(options: CosEmulatorOptions): Promise<CosEmulator> {
  const emulator = new CosEmulatorServer(options);
  if (!options.port) await emulator.listen();
  else {
    await new Promise<void>((resolve, reject) => emulator.server.once('error', reject).listen(options.port, '127.0.0.1', resolve));
    emulator.port = options.port;
    emulator.endpoint = `http://127.0.0.1:${options.port}`;
  }
  emulator.host = `127.0.0.1:${emulator.port}`;
  return emulator;
}

// ---------------------------------------------------------------- request checks

/** COS's codes: InvalidDigest for a Content-MD5 that is not an MD5 at all, BadDigest for a mismatch. */
function checkContentMd5(req: http.IncomingMessage, body: Buffer): void {
  const given = headerValue(req, 'content-md5');
  if (given === undefined) return;
  if (Buffer.from(given, 'base64').length !== 16) {
    throw new ApiError(400, 'InvalidDigest', 'The Content-MD5 you specified is not valid.');
  }
  if (given !== md5(body).toString('base64')) {
    throw new ApiError(400, 'BadDigest', 'The Content-MD5 you specified did not match what was received.');
  }
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
    throw new ApiError(403, 'AccessDenied', 'The Authorization header is not a valid q-sign-algorithm=sha1 signature.');
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
    new Map([...entries].map(([name, value]) => [rfc3986Encode(name).toLowerCase(), headerString(value) ?? ''] as const));
  const params = byEncodedName(query);
  const headerValues = byEncodedName(Object.entries(headers));
  const pairs = (names: string[], values: Map<string, string>) =>
    names.map((name) => `${name}=${rfc3986Encode(values.get(name) ?? '')}`).join('&');
  const httpString = [method.toLowerCase(), path, pairs(signed.paramList, params), pairs(signed.headerList, headerValues), ''].join('\n');
  const digest = crypto.createHash('sha1').update(httpString, 'utf8').digest('hex');
  return ['sha1', signed.signTime, digest, ''].join('\n');
}

function hmacSha1Hex(key: string, data: string): string {
  return crypto.createHmac('sha1', key).update(data, 'utf8').digest('hex');
}

// ---------------------------------------------------------------- small helpers

/** COS request ids are base64 of `<hex unix time>_<hex>_<hex>_<hex>`. */
function newRequestId(): string {
  const hex = (bytes: number) => crypto.randomBytes(bytes).toString('hex');
  return Buffer.from(`${Math.floor(Date.now() / 1000).toString(16)}_${hex(4)}_${hex(2)}_${hex(4)}`).toString('base64');
}

function encodeKeyPath(key: string): string {
  return `/${rfc3986Encode(key).replace(/%2F/g, '/')}`;
}

function ownerXml(name: string): string {
  return xmlNode(name, xmlText('ID', OWNER_ID) + xmlText('DisplayName', '100000000001'));
}

