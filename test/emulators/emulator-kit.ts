/**
 * What the OSS and COS emulators have in common: an in-memory object store behind a local HTTP
 * server, the request log, fault injection, multipart bookkeeping, listing pages and XML helpers.
 *
 * Each emulator extends EmulatorServer and keeps what is its cloud's own: URL/Host parsing,
 * signature checks, routing, XML shapes and error codes. What differs in the shared parts (header
 * names, ETag case, error messages) is passed in as a CloudDialect.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';

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
   * 0..1, fraction of requests that are carried out (an object stored, a part kept, an append
   * applied) and whose connection is then destroyed instead of answering: the client sees a reset
   * for a request that took effect.
   */
  lostResponseRate: number;
  /** Appends are refused as by a bucket that takes none (the cloud's dialect says with what). */
  refuseAppends: boolean;
  /**
   * When turned on, the security/session token installed at that moment counts as expired:
   * requests carrying it get the cloud's 403 expired-token error (OSS SecurityTokenExpired, COS
   * ExpiredToken), also after setCredentials() installs a new token (which passes).
   */
  expiredTokenUntilRefresh: boolean;
  /**
   * Drawn per request once for each non-zero rate (error, reset, slow, lostResponse), then once to
   * pick an error status.
   */
  random: () => number;
}

export interface StoredObject {
  body: Buffer;
  contentType?: string;
  etag: string;
  lastModified: Date;
  /** Created by an append (a put or a completed multipart upload makes a normal object). */
  appendable?: boolean;
}

export interface RequestLogEntry {
  method: string;
  bucket: string;
  key: string;
  query: string;
  /** The status answered; 0 when the connection was reset instead. */
  status: number;
  /** Faults applied, joined by '+': 'slow', 'error', 'reset', 'lostResponse', 'outage', 'expiredToken'. */
  fault?: string;
}

const DEFAULT_FAULTS: FaultConfig = {
  errorRate: 0,
  errorStatuses: [500, 503, 429],
  resetRate: 0,
  slowRate: 0,
  slowMs: 0,
  lostResponseRate: 0,
  refuseAppends: false,
  expiredTokenUntilRefresh: false,
  random: Math.random,
};

const INJECTED_ERROR_CODES: Record<number, string> = {
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

/** An error answer; thrown by handlers and turned into the cloud's error XML in one place. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra elements for the error XML, e.g. the string to sign on an OSS signature mismatch. */
    readonly details: Record<string, string> = {},
    /** Extra response headers, e.g. the next append position on a 409. */
    readonly headers: http.OutgoingHttpHeaders = {},
  ) {
    super(message);
  }
}

export interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  requestId: string;
  hostname: string;
  bucket: string;
  key: string;
  /** Decoded query parameters; a parameter given without a value maps to ''. */
  query: Map<string, string>;
  log: RequestLogEntry;
  /** Set by the lostResponse fault: the request is carried out, its answer replaced by a reset. */
  loseAnswer?: boolean;
}

export interface MultipartUpload {
  uploadId: string;
  bucket: string;
  key: string;
  contentType?: string;
  initiated: Date;
  parts: Map<number, { body: Buffer; etag: string; lastModified: Date }>;
}

/** How a cloud differs in the parts EmulatorServer implements. */
export interface CloudDialect {
  /** 'OSS' or 'COS', for the NotImplemented message. */
  name: string;
  requestIdHeader: string;
  serverHeader: string;
  newRequestId(): string;
  /** The header carrying the temporary-credentials token. */
  tokenHeader: string;
  expiredTokenError(): ApiError;
  /** Whether ETags are written in upper-case hex. */
  upperCaseEtags: boolean;
  /** The cloud rejects a multipart completion if any part but the last is smaller than this. */
  minPartSize: number;
  noSuchUploadMessage: string;
  entityTooSmallMessage: string;
  checkContentMd5(req: http.IncomingMessage, body: Buffer): void;
  /** The Location of a completed multipart object. */
  objectLocation(hostname: string, key: string): string;
  /** `x-oss-next-append-position` or `x-cos-next-append-position`. */
  nextAppendPositionHeader: string;
  /** What an append to a bucket that takes none is answered with (FaultConfig.refuseAppends). */
  appendsRefusedError(): ApiError;
}

/** Both clouds: an appendable object, and so each append, is at most 5 GB. */
export const MAX_APPENDABLE_SIZE = 5 * 1024 ** 3;

export abstract class EmulatorServer<Ctx extends RequestContext> {
  endpoint = '';
  port = 0;
  /** Keyed by `${bucket}/${key}`. */
  readonly objects = new Map<string, StoredObject>();
  readonly requests: RequestLogEntry[] = [];
  readonly server: http.Server;
  protected readonly uploads = new Map<string, MultipartUpload>();
  private readonly expiredTokens = new Set<string | undefined>();
  private faults: FaultConfig = { ...DEFAULT_FAULTS };
  private outage = false;

  constructor(protected readonly dialect: CloudDialect) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** The token of the credentials installed now; what expiredTokenUntilRefresh marks expired. */
  protected abstract currentToken(): string | undefined;
  /** Adds the cloud's own fields to a fresh context. */
  protected abstract newContext(base: RequestContext): Ctx;
  /** Sets bucket and key (and their log fields) from the raw URL path and the Host. */
  protected abstract locate(ctx: Ctx, rawPath: string): void;
  protected abstract authenticate(ctx: Ctx): void;
  protected abstract route(ctx: Ctx): Promise<void>;
  protected abstract sendError(ctx: Ctx, err: ApiError): void;

  setFaults(f: Partial<FaultConfig>): void {
    this.faults = { ...this.faults, ...f };
    if (f.expiredTokenUntilRefresh === true) this.expiredTokens.add(this.currentToken());
    if (f.expiredTokenUntilRefresh === false) this.expiredTokens.clear();
  }

  /**
   * While on, every request is answered 503 ServiceUnavailable, before anything else (no random
   * draws, so other faults' draw sequences are untouched). setFaults({errorRate: 1}) is the same
   * with the configured errorStatuses.
   */
  setOutage(on: boolean): void {
    this.outage = on;
  }

  getObject(bucket: string, key: string): Buffer | undefined {
    return this.objects.get(objectId(bucket, key))?.body;
  }

  listKeys(bucket: string, prefix = ''): string[] {
    return this.sortedObjects(bucket).map(([key]) => key).filter((key) => key.startsWith(prefix));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    this.endpoint = `http://127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      // The SDK keeps sockets alive; without this close() would wait for them to time out.
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestId = this.dialect.newRequestId();
    // Every answer carries it; the SDKs copy it into results and errors.
    res.setHeader(this.dialect.requestIdHeader, requestId);
    res.setHeader('server', this.dialect.serverHeader);
    const log: RequestLogEntry = { method: req.method ?? '', bucket: '', key: '', query: '', status: 0 };
    this.requests.push(log);
    const ctx = this.newContext({
      req, res, requestId, log, hostname: hostnameOf(req), bucket: '', key: '', query: new Map(),
    });
    try {
      this.parseTarget(ctx);
      if (await this.injectFaults(ctx)) return;
      this.authenticate(ctx);
      await this.route(ctx);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.sendError(ctx, err instanceof ApiError ? err : new ApiError(500, 'InternalError', String(err)));
    }
  }

  private parseTarget(ctx: Ctx): void {
    const url = ctx.req.url ?? '/';
    const queryStart = url.indexOf('?');
    const rawPath = queryStart < 0 ? url : url.slice(0, queryStart);
    const rawQuery = queryStart < 0 ? '' : url.slice(queryStart + 1);
    ctx.log.query = rawQuery;
    this.locate(ctx, rawPath);
    for (const pair of rawQuery.split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      const name = decodeComponent(eq < 0 ? pair : pair.slice(0, eq), true);
      if (!ctx.query.has(name)) ctx.query.set(name, eq < 0 ? '' : decodeComponent(pair.slice(eq + 1), true));
    }
  }

  /** Applies the configured faults. Returns true when the request was consumed by a reset. */
  private async injectFaults(ctx: Ctx): Promise<boolean> {
    const applied: string[] = [];
    const record = (fault: string) => {
      applied.push(fault);
      ctx.log.fault = applied.join('+');
    };
    if (this.outage) {
      record('outage');
      throw new ApiError(503, INJECTED_ERROR_CODES[503] ?? 'ServiceUnavailable', 'Injected outage.');
    }
    const { random } = this.faults;
    const roll = (rate: number) => rate > 0 && random() < rate;
    const error = roll(this.faults.errorRate);
    const reset = roll(this.faults.resetRate);
    const slow = roll(this.faults.slowRate);
    const lost = roll(this.faults.lostResponseRate);

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
      throw new ApiError(status, INJECTED_ERROR_CODES[status] ?? 'InjectedFault', 'Injected fault.');
    }
    if (this.expiredTokens.has(headerValue(ctx.req, this.dialect.tokenHeader))) {
      record('expiredToken');
      throw this.dialect.expiredTokenError();
    }
    if (lost) {
      record('lostResponse');
      ctx.loseAnswer = true;
    }
    return false;
  }

  // ---------------------------------------------------------------- handlers both clouds share

  protected deleteObject(ctx: Ctx): void {
    this.objects.delete(objectId(ctx.bucket, ctx.key));
    this.send(ctx, 204, {});
  }

  /** Records a new upload and answers InitiateMultipartUploadResult. */
  protected startUpload(ctx: Ctx, uploadId: string, contentType: string | undefined): void {
    this.uploads.set(uploadId, {
      uploadId, bucket: ctx.bucket, key: ctx.key, contentType, initiated: new Date(), parts: new Map(),
    });
    this.sendXml(ctx, 200, 'InitiateMultipartUploadResult',
      xmlText('Bucket', ctx.bucket) + xmlText('Key', ctx.key) + xmlText('UploadId', uploadId));
  }

  protected async uploadPart(ctx: Ctx): Promise<void> {
    const upload = this.findUpload(ctx);
    const partNumber = Number(ctx.query.get('partNumber'));
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
      throw new ApiError(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive.');
    }
    const body = await readBody(ctx.req);
    this.dialect.checkContentMd5(ctx.req, body);
    const etag = this.quotedEtag(md5(body));
    upload.parts.set(partNumber, { body, etag, lastModified: new Date() });
    this.send(ctx, 200, { etag });
  }

  protected async completeMultipart(ctx: Ctx): Promise<void> {
    const upload = this.findUpload(ctx);
    const xml = await readBody(ctx.req);
    this.dialect.checkContentMd5(ctx.req, xml);
    const requested = parseCompleteParts(xml.toString('utf8'));
    const parts = requested.map(({ partNumber, etag }, index) => {
      const previous = requested[index - 1];
      if (previous && previous.partNumber >= partNumber) {
        throw new ApiError(400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
      }
      const part = upload.parts.get(partNumber);
      if (!part || normalizeEtag(part.etag) !== normalizeEtag(etag)) {
        throw new ApiError(400, 'InvalidPart', 'One or more of the specified parts could not be found or the specified entity tag might not have matched the part\'s entity tag.');
      }
      if (index < requested.length - 1 && part.body.length < this.dialect.minPartSize) {
        throw new ApiError(400, 'EntityTooSmall', this.dialect.entityTooSmallMessage);
      }
      return part;
    });

    const body = Buffer.concat(parts.map((part) => part.body));
    // Like OSS, COS and S3: the MD5 of the concatenated binary part MD5s, suffixed with the part count.
    const partDigests = Buffer.concat(parts.map((part) => Buffer.from(normalizeEtag(part.etag), 'hex')));
    const etag = this.quotedEtag(md5(partDigests), `-${parts.length}`);
    this.uploads.delete(upload.uploadId);
    this.objects.set(objectId(ctx.bucket, ctx.key), { body, contentType: upload.contentType, etag, lastModified: new Date() });
    this.sendXml(ctx, 200, 'CompleteMultipartUploadResult',
      xmlText('Location', this.dialect.objectLocation(ctx.hostname, ctx.key)) +
      xmlText('Bucket', ctx.bucket) + xmlText('Key', ctx.key) + xmlText('ETag', etag));
  }

  /**
   * `POST /<key>?append&position=N`, as both clouds define it: N must be the object's length (0
   * creates it), the key must not hold a normal object, and the result is at most 5 GB. The answer
   * carries the next position, the 409 for a wrong position too.
   */
  protected async appendObject(ctx: Ctx): Promise<void> {
    const rawPosition = ctx.query.get('position') ?? '';
    const position = Number(rawPosition);
    if (!/^\d+$/.test(rawPosition) || !Number.isSafeInteger(position)) {
      throw new ApiError(400, 'InvalidArgument', 'The position argument is missing or not a non-negative integer.');
    }
    if (this.faults.refuseAppends) throw this.dialect.appendsRefusedError();
    const declared = Number(headerValue(ctx.req, 'content-length') ?? 0);
    if (position + declared > MAX_APPENDABLE_SIZE) throw appendTooLarge();
    const id = objectId(ctx.bucket, ctx.key);
    const existing = this.objects.get(id);
    this.checkAppendable(existing, position);
    const body = await readBody(ctx.req);
    if (position + body.length > MAX_APPENDABLE_SIZE) throw appendTooLarge();
    this.dialect.checkContentMd5(ctx.req, body);
    // Another append may have landed while this body arrived.
    const current = this.objects.get(id);
    if (current !== existing) this.checkAppendable(current, position);
    const whole = Buffer.concat([current?.body ?? Buffer.alloc(0), body]);
    const stored: StoredObject = {
      body: whole,
      // The first append sets the object's metadata; later ones do not change it.
      contentType: current ? current.contentType : headerValue(ctx.req, 'content-type') || undefined,
      etag: this.quotedEtag(md5(whole)),
      lastModified: new Date(),
      appendable: true,
    };
    this.objects.set(id, stored);
    this.send(ctx, 200, { etag: stored.etag, [this.dialect.nextAppendPositionHeader]: whole.length });
  }

  private checkAppendable(stored: StoredObject | undefined, position: number): void {
    if (stored && !stored.appendable) {
      throw new ApiError(409, 'ObjectNotAppendable', 'The object is not appendable.');
    }
    const length = stored?.body.length ?? 0;
    if (position !== length) {
      throw new ApiError(409, 'PositionNotEqualToLength', 'Position is not equal to file length.', {}, {
        [this.dialect.nextAppendPositionHeader]: length,
      });
    }
  }

  protected abortMultipart(ctx: Ctx): void {
    this.uploads.delete(this.findUpload(ctx).uploadId);
    this.send(ctx, 204, {});
  }

  protected findUpload(ctx: Ctx): MultipartUpload {
    const upload = this.uploads.get(ctx.query.get('uploadId') ?? '');
    if (!upload || upload.bucket !== ctx.bucket || upload.key !== ctx.key) {
      throw new ApiError(404, 'NoSuchUpload', this.dialect.noSuchUploadMessage);
    }
    return upload;
  }

  // ---------------------------------------------------------------- answering

  protected sortedObjects(bucket: string): Array<[string, StoredObject]> {
    const bucketPrefix = `${bucket}/`;
    return [...this.objects]
      .filter(([id]) => id.startsWith(bucketPrefix))
      .map(([id, stored]): [string, StoredObject] => [id.slice(bucketPrefix.length), stored])
      .sort(([a], [b]) => compareUtf8(a, b));
  }

  protected quotedEtag(digest: Buffer, suffix = ''): string {
    const hex = digest.toString('hex');
    return `"${this.dialect.upperCaseEtags ? hex.toUpperCase() : hex}${suffix}"`;
  }

  protected notImplemented(): ApiError {
    return new ApiError(501, 'NotImplemented', `This operation is not supported by the ${this.dialect.name} emulator.`);
  }

  protected send(ctx: Ctx, status: number, headers: http.OutgoingHttpHeaders, body?: Buffer | string): void {
    if (ctx.loseAnswer) {
      // The request has been carried out (or refused); the client only sees the connection drop.
      ctx.log.status = 0;
      ctx.req.socket.destroy();
      return;
    }
    ctx.log.status = status;
    const length = body === undefined ? 0 : Buffer.byteLength(body);
    ctx.res.writeHead(status, { 'content-length': length, ...headers });
    // A HEAD answer announces the object's length but sends no bytes.
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
  }

  protected sendXml(ctx: Ctx, status: number, root: string, inner: string, headers: http.OutgoingHttpHeaders = {}): void {
    this.send(ctx, status, { ...headers, 'content-type': 'application/xml' }, xmlDocument(root, inner));
  }
}

// ---------------------------------------------------------------- request parsing

function hostnameOf(req: http.IncomingMessage): string {
  const host = headerValue(req, 'host') ?? '';
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
}

/** Decodes one URI component; in a query string '+' also means a space. */
export function decodeComponent(raw: string, isQuery = false): string {
  try {
    return decodeURIComponent(isQuery ? raw.replace(/\+/g, ' ') : raw);
  } catch {
    throw new ApiError(400, 'InvalidURI', `Couldn't parse the specified URI: ${raw}`);
  }
}

export function headerValue(req: http.IncomingMessage, name: string): string | undefined {
  return headerString(req.headers[name]);
}

export function headerString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

export async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** max-keys and the like: `defaultValue` when absent, else an integer in 0..max. */
export function parseListLimit(raw: string | undefined, name: string, max: number, defaultValue = max): number {
  if (raw === undefined || raw === '') return defaultValue;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new ApiError(400, 'InvalidArgument', `Argument ${name} must be an integer between 0 and ${max}.`);
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
    throw new ApiError(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
  return parts;
}

// ---------------------------------------------------------------- fault helpers

/**
 * Cuts the connection before any answer: a request with a body once its first bytes arrive, a
 * bodiless one right away. The SDK sees a network error without a status code. (Once a response
 * head has gone out, ali-oss reports a cut as a status-200 XML parse error instead, so no response
 * bytes are sent.)
 */
function resetConnection(req: http.IncomingMessage): void {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody) req.once('data', () => req.socket.destroy());
  else req.socket.destroy();
}

// ---------------------------------------------------------------- listing

export interface ListPage {
  objects: Array<[string, StoredObject]>;
  prefixes: string[];
  truncated: boolean;
  /** The last key or common prefix returned: where the next page starts after. */
  last: string;
}

export function listPage(
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

/** Both clouds order keys by their UTF-8 bytes, which differs from JS string order for astral characters. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------- small helpers

export function objectId(bucket: string, key: string): string {
  return `${bucket}/${key}`;
}

export function md5(data: Buffer): Buffer {
  return crypto.createHash('md5').update(data).digest();
}

/** Quotes stripped; lower case, so that ETags compare without regard to case. */
function normalizeEtag(etag: string): string {
  return etag.trim().replace(/^"|"$/g, '').toLowerCase();
}

/** encodeURIComponent that also escapes !'()*, as RFC 3986, OSS V4 and the COS signature require. */
export function rfc3986Encode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Neither cloud names this answer; EntityTooLarge is what both give an object over their size limit. */
function appendTooLarge(): ApiError {
  return new ApiError(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size of an appendable object (5 GB).');
}

export function noSuchKey(): ApiError {
  return new ApiError(404, 'NoSuchKey', 'The specified key does not exist.');
}

// ---------------------------------------------------------------- XML

/** `<name>text</name>` with the text escaped. */
export function xmlText(name: string, value: string | number | boolean): string {
  const escaped = String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<${name}>${escaped}</${name}>`;
}

/** One xmlText element per field, in order. */
export function xmlFields(fields: Record<string, string>): string {
  return Object.entries(fields).map(([name, value]) => xmlText(name, value)).join('');
}

export function xmlDocument(root: string, innerXml: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${xmlNode(root, innerXml)}`;
}

/** `<name>inner</name>` around markup that is already XML. */
export function xmlNode(name: string, innerXml: string): string {
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

/** mulberry32: the emulator's fault draws, reproducible run to run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
