import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import COS from 'cos-nodejs-sdk-v5';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { startCosEmulator, type CosEmulator } from './cos-emulator';

const SECRET_ID = 'AKID-test-secret-id';
const SECRET_KEY = 'test-secret-key';
const BUCKET = 'test-1250000000';
const REGION = 'ap-guangzhou';
const HOST = `${BUCKET}.cos.${REGION}.myqcloud.com`;
const MB = 1024 * 1024;
/** uploadFile goes multipart above SliceSize, in ChunkSize parts (1 MB is the SDK's minimum). */
const SLICED = { SliceSize: MB, ChunkSize: MB };

let emulator: CosEmulator;
/** Files for uploadFile and ReadStream bodies. */
let tempDir: string;

beforeAll(async () => {
  tempDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cos-emulator-'));
});

afterAll(async () => {
  await fsp.rm(tempDir, { recursive: true, force: true });
});

beforeEach(async () => {
  emulator = await startCosEmulator({ secretId: SECRET_ID, secretKey: SECRET_KEY });
});

afterEach(async () => {
  await emulator.close();
});

function client(overrides: Partial<COS.COSOptions> = {}, target: CosEmulator = emulator): COS {
  return new COS({
    SecretId: SECRET_ID,
    SecretKey: SECRET_KEY,
    Protocol: 'http:',
    Ip: target.host,
    Timeout: 5000,
    ...overrides,
  });
}

const at = { Bucket: BUCKET, Region: REGION };

function lastRequest() {
  const entry = emulator.requests.at(-1);
  if (!entry) throw new Error('no request reached the emulator');
  return entry;
}

function md5Hex(data: Buffer): string {
  return crypto.createHash('md5').update(data).digest('hex');
}

async function tempFile(name: string, body: Buffer): Promise<string> {
  const file = path.join(tempDir, name);
  await fsp.writeFile(file, body);
  return file;
}

/** A request the SDK cannot make: no Authorization header at all. */
function unsignedGet(pathAndQuery: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: emulator.port, path: pathAndQuery, headers: { host: HOST } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const REQUEST_ID = /^[A-Za-z0-9+/]+=*$/;

const AWKWARD_KEYS = [
  'with space/and  two  spaces.txt',
  'unicode/日本語-über-😀.bin',
  'plus+sign+',
  'percent%25and%literal',
  'hash#fragment',
  'question?mark=1&amp=2',
  "rfc3986 !'()* chars",
  'a~b;c:d,e@f$g=h[i]{j}',
];

describe('objects', () => {
  it('round-trips putObject, getObject and headObject byte-exact', async () => {
    const cos = client();
    const body = crypto.randomBytes(64 * 1024);
    const etag = `"${md5Hex(body)}"`;

    const put = await cos.putObject({ ...at, Key: 'media/snapshot.jpg', Body: body, ContentType: 'image/jpeg' });
    expect(put).toMatchObject({ statusCode: 200, ETag: etag, RequestId: expect.stringMatching(REQUEST_ID) });

    const got = await cos.getObject({ ...at, Key: 'media/snapshot.jpg' });
    expect(Buffer.compare(got.Body as Buffer, body)).toBe(0);
    expect(got).toMatchObject({ ETag: etag, headers: { 'content-type': 'image/jpeg' } });

    const head = await cos.headObject({ ...at, Key: 'media/snapshot.jpg' });
    expect(head).toMatchObject({ statusCode: 200, ETag: etag, headers: { 'content-length': String(body.length) } });

    expect(emulator.getObject(BUCKET, 'media/snapshot.jpg')?.equals(body)).toBe(true);
    expect(emulator.objects.get(`${BUCKET}/media/snapshot.jpg`)?.contentType).toBe('image/jpeg');
  });

  it('stores a chunked ReadStream upload', async () => {
    const body = crypto.randomBytes(300_000);
    const file = await tempFile('stream.bin', body);
    const cos = client();
    const sentHeaders: Array<Record<string, unknown>> = [];
    cos.on('before-send', (opt: { headers: Record<string, unknown> }) => sentHeaders.push(opt.headers));

    await cos.putObject({ ...at, Key: 'streams/chunked.bin', Body: fs.createReadStream(file) });

    expect(Object.keys(sentHeaders[0] ?? {}).map((h) => h.toLowerCase())).not.toContain('content-length');
    expect(emulator.getObject(BUCKET, 'streams/chunked.bin')?.equals(body)).toBe(true);
  });

  it('checks Content-MD5: BadDigest on a mismatch, InvalidDigest when malformed', async () => {
    const cos = client();
    const wrongMd5 = crypto.createHash('md5').update('something else').digest('base64');
    await expect(cos.putObject({ ...at, Key: 'digest.txt', Body: Buffer.from('payload'), Headers: { 'Content-MD5': wrongMd5 } }))
      .rejects.toMatchObject({ statusCode: 400, code: 'BadDigest' });
    await expect(cos.putObject({ ...at, Key: 'digest.txt', Body: Buffer.from('payload'), Headers: { 'Content-MD5': 'not-an-md5' } }))
      .rejects.toMatchObject({ statusCode: 400, code: 'InvalidDigest' });
    expect(emulator.getObject(BUCKET, 'digest.txt')).toBeUndefined();

    // With UploadCheckContentMd5 the SDK sends a correct Content-MD5 itself.
    await client({ UploadCheckContentMd5: true }).putObject({ ...at, Key: 'digest.txt', Body: Buffer.from('payload') });
    expect(emulator.getObject(BUCKET, 'digest.txt')?.toString()).toBe('payload');
  });

  it('answers missing keys with 404 NoSuchKey, and HEAD with a bodiless 404', async () => {
    const cos = client();
    await cos.putObject({ ...at, Key: 'gone.txt', Body: Buffer.from('soon gone') });
    expect((await cos.deleteObject({ ...at, Key: 'gone.txt' })).statusCode).toBe(204);

    await expect(cos.getObject({ ...at, Key: 'gone.txt' })).rejects.toMatchObject({
      statusCode: 404,
      code: 'NoSuchKey',
      RequestId: expect.stringMatching(REQUEST_ID),
    });
    // Without a body the SDK has no code to read and reports the status instead.
    await expect(cos.headObject({ ...at, Key: 'gone.txt' })).rejects.toMatchObject({ statusCode: 404, code: '404' });
  });

  it('round-trips awkward keys through put, get, head, getBucket and delete', async () => {
    const cos = client();
    for (const [index, key] of AWKWARD_KEYS.entries()) {
      const body = Buffer.from(`body of key ${index}`);
      await cos.putObject({ ...at, Key: key, Body: body });
      expect(emulator.getObject(BUCKET, key)?.equals(body), key).toBe(true);
      expect(Buffer.compare((await cos.getObject({ ...at, Key: key })).Body as Buffer, body), key).toBe(0);
      expect((await cos.headObject({ ...at, Key: key })).statusCode, key).toBe(200);
    }

    const listed = await cos.getBucket({ ...at });
    expect(listed.Contents.map((c) => c.Key).sort()).toEqual([...AWKWARD_KEYS].sort());
    // As a Prefix each key is a signed query value, where !'()* must be escaped too.
    for (const key of AWKWARD_KEYS) {
      expect((await cos.getBucket({ ...at, Prefix: key })).Contents.map((c) => c.Key), key).toEqual([key]);
    }

    for (const key of AWKWARD_KEYS) await cos.deleteObject({ ...at, Key: key });
    expect(emulator.listKeys(BUCKET)).toEqual([]);
  });

  it('answers operations it does not implement with 501 NotImplemented', async () => {
    await expect(client().getObjectAcl({ ...at, Key: 'any.txt' })).rejects.toMatchObject({ statusCode: 501, code: 'NotImplemented' });
  });
});

describe('getBucket', () => {
  const keys = ['photos/2024/a.jpg', 'photos/2024/b.jpg', 'photos/2025/c.jpg', 'videos/d.mp4'];

  beforeEach(async () => {
    const cos = client();
    for (const key of keys) await cos.putObject({ ...at, Key: key, Body: Buffer.from(key) });
  });

  it('lists with a prefix, a delimiter and markers', async () => {
    const cos = client();
    const photos = await cos.getBucket({ ...at, Prefix: 'photos/' });
    expect(photos.Contents.map((c) => c.Key)).toEqual(keys.slice(0, 3));
    expect(photos.Contents[0]).toMatchObject({
      Key: 'photos/2024/a.jpg',
      Size: String('photos/2024/a.jpg'.length),
      ETag: `"${md5Hex(Buffer.from('photos/2024/a.jpg'))}"`,
      LastModified: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });

    const folders = await cos.getBucket({ ...at, Prefix: 'photos/', Delimiter: '/' });
    expect(folders.CommonPrefixes.map((p) => p.Prefix)).toEqual(['photos/2024/', 'photos/2025/']);
    expect(folders.Contents).toEqual([]);

    const firstPage = await cos.getBucket({ ...at, MaxKeys: 2 });
    expect(firstPage).toMatchObject({ IsTruncated: 'true', NextMarker: 'photos/2024/b.jpg' });
    const secondPage = await cos.getBucket({ ...at, MaxKeys: 2, Marker: firstPage.NextMarker });
    expect(secondPage.Contents.map((c) => c.Key)).toEqual(keys.slice(2));
    expect(secondPage.IsTruncated).toBe('false');
    expect(emulator.listKeys(BUCKET, 'videos/')).toEqual(['videos/d.mp4']);
  });
});

describe('signatures', () => {
  it('answers a wrong secret with 403 SignatureDoesNotMatch, also on HEAD', async () => {
    await client().putObject({ ...at, Key: 'existing.txt', Body: Buffer.from('x') });
    const impostor = client({ SecretKey: 'not-the-secret' });

    await expect(impostor.putObject({ ...at, Key: 'denied.txt', Body: Buffer.from('nope') })).rejects.toMatchObject({
      statusCode: 403,
      code: 'SignatureDoesNotMatch',
      RequestId: expect.stringMatching(REQUEST_ID),
    });
    await expect(impostor.headObject({ ...at, Key: 'existing.txt' })).rejects.toMatchObject({ statusCode: 403, code: '403' });
    expect(emulator.getObject(BUCKET, 'denied.txt')).toBeUndefined();
  });

  it('answers an unknown SecretId with 403 InvalidAccessKeyId', async () => {
    await expect(client({ SecretId: 'AKID-unknown' }).getObject({ ...at, Key: 'any.txt' })).rejects.toMatchObject({
      statusCode: 403,
      code: 'InvalidAccessKeyId',
    });
  });

  it('requires Host to be signed, which ForceSignHost: false turns off', async () => {
    await expect(client({ ForceSignHost: false }).getBucket({ ...at })).rejects.toMatchObject({ statusCode: 403, code: 'AccessDenied' });
  });

  it('answers an unsigned request with the COS error document and a request id header', async () => {
    const res = await unsignedGet('/any.txt');
    expect(res.status).toBe(403);
    expect(res.headers['x-cos-request-id']).toMatch(REQUEST_ID);
    expect(res.body).toMatch(new RegExp(
      '<Error><Code>AccessDenied</Code><Message>Access Denied.</Message>' +
      `<Resource>${HOST.replace(/\./g, '\\.')}/any\\.txt</Resource>` +
      `<RequestId>${res.headers['x-cos-request-id']}</RequestId><TraceId>[^<]+</TraceId></Error>$`,
    ));
  });

  it('rejects skewed clocks with the codes the SDK corrects itself on', async () => {
    // An hour slow: the signature has expired. An hour fast: it starts too far in the future.
    const slow = { SystemClockOffset: -3600_000 };
    const fast = { SystemClockOffset: 3600_000 };
    await expect(client({ ...slow, CorrectClockSkew: false }).getBucket({ ...at })).rejects.toMatchObject({
      statusCode: 403, code: 'AccessDenied', message: 'Request has expired',
    });
    await expect(client({ ...fast, CorrectClockSkew: false }).getBucket({ ...at })).rejects.toMatchObject({
      statusCode: 403, code: 'RequestTimeTooSkewed',
    });
    expect(emulator.requests.map((r) => r.status)).toEqual([403, 403]);

    // By default the SDK takes the offset from our Date header and retries once, successfully.
    const skewWarning = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect((await client(slow).getBucket({ ...at })).statusCode).toBe(200);
      expect((await client(fast).getBucket({ ...at })).statusCode).toBe(200);
      expect(skewWarning).toHaveBeenCalledWith('error: Local time is too skewed.');
    } finally {
      skewWarning.mockRestore();
    }
    expect(emulator.requests.map((r) => r.status)).toEqual([403, 403, 403, 200, 403, 200]);
  });
});

describe('session token', () => {
  it('requires the configured token', async () => {
    const sts = await startCosEmulator({ secretId: SECRET_ID, secretKey: SECRET_KEY, sessionToken: 'token-1' });
    try {
      const withToken = (SecurityToken?: string) => client({ SecurityToken }, sts);
      await expect(withToken().putObject({ ...at, Key: 'a.txt', Body: Buffer.from('a') })).rejects.toMatchObject({
        statusCode: 403, code: 'InvalidAccessKeyId',
      });
      await expect(withToken('forged').putObject({ ...at, Key: 'a.txt', Body: Buffer.from('a') })).rejects.toMatchObject({
        statusCode: 403, code: 'InvalidAccessKeyId',
      });
      expect((await withToken('token-1').putObject({ ...at, Key: 'a.txt', Body: Buffer.from('a') })).statusCode).toBe(200);
      expect(sts.requests.map((r) => r.status)).toEqual([403, 403, 200]);
    } finally {
      await sts.close();
    }
  });

  it('answers 403 ExpiredToken until setCredentials installs a new token', async () => {
    emulator.setCredentials({ secretId: SECRET_ID, secretKey: SECRET_KEY, sessionToken: 'token-1' });
    emulator.setFaults({ expiredTokenUntilRefresh: true });
    const stale = client({ SecurityToken: 'token-1' });

    await expect(stale.putObject({ ...at, Key: 'a.txt', Body: Buffer.from('a') })).rejects.toMatchObject({
      statusCode: 403, code: 'ExpiredToken',
    });
    // A 4xx: no retries.
    expect(emulator.requests).toHaveLength(1);
    expect(lastRequest()).toMatchObject({ status: 403, fault: 'expiredToken' });

    emulator.setCredentials({ secretId: 'AKID-tmp-2', secretKey: 'tmp-secret-2', sessionToken: 'token-2' });
    const refreshed = client({ SecretId: 'AKID-tmp-2', SecretKey: 'tmp-secret-2', SecurityToken: 'token-2' });
    expect((await refreshed.putObject({ ...at, Key: 'a.txt', Body: Buffer.from('a') })).statusCode).toBe(200);
    await expect(stale.getObject({ ...at, Key: 'a.txt' })).rejects.toMatchObject({ statusCode: 403, code: 'ExpiredToken' });
  });
});

describe('multipart', () => {
  const fileBody = crypto.randomBytes(5 * MB + 777);
  const partCount = 6;

  it('uploads a file above SliceSize in parts, byte-exact', async () => {
    const file = await tempFile('recording.mp4', fileBody);

    const result = await client().uploadFile({ ...at, Key: 'recordings/room-1.mp4', FilePath: file, ...SLICED });

    expect(result.statusCode).toBe(200);
    expect(emulator.getObject(BUCKET, 'recordings/room-1.mp4')?.equals(fileBody)).toBe(true);
    expect(emulator.objects.get(`${BUCKET}/recordings/room-1.mp4`)?.etag).toMatch(new RegExp(`^"[0-9a-f]{32}-${partCount}"$`));
    const calls = emulator.requests.map((r) => `${r.method} ${r.query.replace(/=[^&]*/g, '')}`);
    expect(calls).toEqual([
      'GET uploads&prefix',
      'POST uploads',
      ...Array<string>(partCount).fill('PUT partNumber&uploadId'),
      'POST uploadId',
    ]);
  });

  it('resumes an in-progress upload, sending only the missing parts', async () => {
    const file = await tempFile('resumable.mp4', fileBody);
    const cos = client();
    const key = 'recordings/resumed.mp4';
    const { UploadId } = await cos.multipartInit({ ...at, Key: key });
    for (const partNumber of [1, 2]) {
      const part = fileBody.subarray((partNumber - 1) * MB, partNumber * MB);
      await cos.multipartUpload({ ...at, Key: key, UploadId, PartNumber: partNumber, Body: part });
    }
    const listed = await cos.multipartList({ ...at, Prefix: key, Delimiter: '' });
    expect(listed.Upload.map((u) => u.UploadId)).toEqual([UploadId]);
    emulator.requests.length = 0;

    await cos.uploadFile({ ...at, Key: key, FilePath: file, ...SLICED });

    expect(emulator.getObject(BUCKET, key)?.equals(fileBody)).toBe(true);
    const partNumbers = emulator.requests
      .filter((r) => r.method === 'PUT')
      .map((r) => Number(new URLSearchParams(r.query).get('partNumber')))
      .sort((a, b) => a - b);
    expect(partNumbers).toEqual([3, 4, 5, 6]);
    expect(emulator.requests.some((r) => r.method === 'GET' && r.query.startsWith('uploadId='))).toBe(true);
    expect((await cos.multipartList({ ...at, Prefix: key, Delimiter: '' })).Upload).toEqual([]);
  });

  it('aborts an upload, after which it is gone', async () => {
    const cos = client();
    const { UploadId } = await cos.multipartInit({ ...at, Key: 'aborted.bin' });
    expect((await cos.multipartAbort({ ...at, Key: 'aborted.bin', UploadId })).statusCode).toBe(204);
    expect((await cos.multipartList({ ...at, Prefix: 'aborted.bin', Delimiter: '' })).Upload).toEqual([]);
    await expect(cos.multipartComplete({ ...at, Key: 'aborted.bin', UploadId, Parts: [{ PartNumber: 1, ETag: '"00"' }] }))
      .rejects.toMatchObject({ statusCode: 404, code: 'NoSuchUpload' });
  });
});

describe('fault injection', () => {
  it('answers with injected errors; the SDK makes 4 attempts on 5xx and 1 on 4xx', async () => {
    // Each failing request draws twice: once for the error roll, once to pick the status.
    const draws = [0, 0.1, 0, 0.1, 0, 0.1, 0, 0.1, 0, 0.5, 0, 0.5, 0, 0.5, 0, 0.5, 0, 0.9];
    emulator.setFaults({ errorRate: 1, random: () => draws.shift() ?? 0 });
    const cos = client();

    await expect(cos.putObject({ ...at, Key: 'a.txt', Body: Buffer.from('a') })).rejects.toMatchObject({
      statusCode: 500, code: 'InternalError', RequestId: expect.stringMatching(REQUEST_ID),
    });
    await expect(cos.getObject({ ...at, Key: 'a.txt' })).rejects.toMatchObject({ statusCode: 503, code: 'ServiceUnavailable' });
    await expect(cos.headObject({ ...at, Key: 'a.txt' })).rejects.toMatchObject({ statusCode: 429, code: '429' });
    expect(emulator.requests.map((r) => `${r.method} ${r.status} ${r.fault}`)).toEqual([
      ...Array<string>(4).fill('PUT 500 error'),
      ...Array<string>(4).fill('GET 503 error'),
      'HEAD 429 error',
    ]);
    expect(emulator.getObject(BUCKET, 'a.txt')).toBeUndefined();
  });

  it('fails a part 3 times (ChunkRetryTimes + 1) and a stream put once: stream bodies get no SDK retries', async () => {
    const file = await tempFile('failing.mp4', crypto.randomBytes(3 * MB));
    // Let the upload listing and the initiation through, then fail everything with a 500.
    let draws = 0;
    emulator.setFaults({ errorRate: 1, errorStatuses: [500], random: () => (draws++ < 2 ? 1 : 0) });

    await expect(client({ ChunkParallelLimit: 1 }).uploadFile({ ...at, Key: 'failing.mp4', FilePath: file, ...SLICED }))
      .rejects.toMatchObject({ statusCode: 500, code: 'InternalError' });
    const partAttempts = emulator.requests.filter((r) => r.method === 'PUT');
    expect(partAttempts.map((r) => new URLSearchParams(r.query).get('partNumber'))).toEqual(['1', '1', '1']);
    expect(emulator.requests.some((r) => r.method === 'POST' && r.query.startsWith('uploadId='))).toBe(false);

    emulator.requests.length = 0;
    await expect(client().putObject({ ...at, Key: 'stream.bin', Body: fs.createReadStream(file) }))
      .rejects.toMatchObject({ statusCode: 500 });
    expect(emulator.requests).toHaveLength(1);
  });

  it('retries a failing Complete 12 times: ChunkRetryTimes + 1 tries of 4 attempts each', async () => {
    const file = await tempFile('complete.mp4', crypto.randomBytes(3 * MB));
    // Let the upload listing, the initiation and the 3 parts through, then fail everything with a 500.
    let draws = 0;
    emulator.setFaults({ errorRate: 1, errorStatuses: [500], random: () => (draws++ < 5 ? 1 : 0) });

    await expect(client().uploadFile({ ...at, Key: 'complete.mp4', FilePath: file, ...SLICED }))
      .rejects.toMatchObject({ statusCode: 500, code: 'InternalError' });
    const completions = emulator.requests.filter((r) => r.method === 'POST' && r.query.startsWith('uploadId='));
    expect(completions).toHaveLength(12);
    expect(emulator.getObject(BUCKET, 'complete.mp4')).toBeUndefined();
  });

  it('resets connections into network errors, which the SDK retries 4 times', async () => {
    emulator.setFaults({ resetRate: 1 });
    const body = crypto.randomBytes(256 * 1024);
    const cos = client();

    const error: unknown = await cos.putObject({ ...at, Key: 'reset.bin', Body: body }).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: expect.stringMatching(/^E[A-Z]+$/) });
    expect(error).not.toHaveProperty('statusCode');
    expect(emulator.requests.map((r) => `${r.method} ${r.status} ${r.fault}`)).toEqual(Array<string>(4).fill('PUT 0 reset'));

    emulator.setFaults({ resetRate: 0 });
    expect((await cos.putObject({ ...at, Key: 'reset.bin', Body: body })).statusCode).toBe(200);
  });

  it('delays answers when slowRate is 1; past the SDK Timeout that is 4 attempts', async () => {
    emulator.setFaults({ slowRate: 1, slowMs: 300 });
    const started = Date.now();
    await client().putObject({ ...at, Key: 'slow.txt', Body: Buffer.from('slow') });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(lastRequest()).toMatchObject({ status: 200, fault: 'slow' });

    emulator.requests.length = 0;
    await expect(client({ Timeout: 100 }).getObject({ ...at, Key: 'slow.txt' })).rejects.toMatchObject({
      code: expect.stringMatching(/TIMEDOUT/),
    });
    expect(emulator.requests.filter((r) => r.method === 'GET')).toHaveLength(4);
  });
});

describe('append', () => {
  /** The SDK core resends a Buffer body on a network error; a stream opts out of that. */
  function streamOf(body: Buffer): { Body: Readable; ContentLength: number } {
    return { Body: Readable.from([body]), ContentLength: body.length };
  }

  it('creates an appendable object at position 0 and appends at its length', async () => {
    const cos = client();
    const first = Buffer.from('first chunk|');
    const second = crypto.randomBytes(70_000);

    const created = await cos.appendObject({ ...at, Key: 'live/room.flv', Position: 0, ContentType: 'video/x-flv', ...streamOf(first) });
    expect(created.headers).toMatchObject({ 'x-cos-next-append-position': String(first.length) });
    const appended = await cos.appendObject({ ...at, Key: 'live/room.flv', Position: first.length, ...streamOf(second) });
    expect(appended.headers).toMatchObject({ 'x-cos-next-append-position': String(first.length + second.length) });

    expect(emulator.getObject(BUCKET, 'live/room.flv')?.equals(Buffer.concat([first, second]))).toBe(true);
    const head = await cos.headObject({ ...at, Key: 'live/room.flv' });
    expect(head.headers).toMatchObject({
      'x-cos-object-type': 'appendable',
      'content-length': String(first.length + second.length),
      'content-type': 'video/x-flv',
    });
    expect((await cos.getObject({ ...at, Key: 'live/room.flv' })).headers).toMatchObject({ 'x-cos-object-type': 'appendable' });
    const [request] = emulator.requests;
    expect(request).toMatchObject({ method: 'POST', query: 'append=&position=0', status: 200 });
  });

  it('answers a wrong position with 409 PositionNotEqualToLength and the length in x-cos-next-append-position', async () => {
    const cos = client();
    await cos.appendObject({ ...at, Key: 'a.log', Position: 0, ...streamOf(Buffer.from('12345')) });

    for (const position of [0, 3, 9]) {
      await expect(cos.appendObject({ ...at, Key: 'a.log', Position: position, ...streamOf(Buffer.from('x')) })).rejects.toMatchObject({
        statusCode: 409,
        code: 'PositionNotEqualToLength',
        headers: { 'x-cos-next-append-position': '5' },
      });
    }
    // A missing object is 0 bytes long.
    await expect(cos.appendObject({ ...at, Key: 'missing.log', Position: 4, ...streamOf(Buffer.from('x')) })).rejects.toMatchObject({
      statusCode: 409, code: 'PositionNotEqualToLength', headers: { 'x-cos-next-append-position': '0' },
    });
    expect(emulator.getObject(BUCKET, 'a.log')?.toString()).toBe('12345');
  });

  it('refuses to append to a normal object (409 ObjectNotAppendable); a put turns an appendable object normal', async () => {
    const cos = client();
    await cos.putObject({ ...at, Key: 'normal.bin', Body: Buffer.from('normal') });
    await expect(cos.appendObject({ ...at, Key: 'normal.bin', Position: 6, ...streamOf(Buffer.from('x')) })).rejects.toMatchObject({
      statusCode: 409, code: 'ObjectNotAppendable',
    });
    expect((await cos.headObject({ ...at, Key: 'normal.bin' })).headers).toMatchObject({ 'x-cos-object-type': 'normal' });

    await cos.appendObject({ ...at, Key: 'was-appendable.bin', Position: 0, ...streamOf(Buffer.from('abc')) });
    await cos.putObject({ ...at, Key: 'was-appendable.bin', Body: Buffer.from('replaced') });
    expect((await cos.headObject({ ...at, Key: 'was-appendable.bin' })).headers).toMatchObject({ 'x-cos-object-type': 'normal' });
    await expect(cos.appendObject({ ...at, Key: 'was-appendable.bin', Position: 8, ...streamOf(Buffer.from('x')) })).rejects.toMatchObject({
      statusCode: 409, code: 'ObjectNotAppendable',
    });
    expect(emulator.getObject(BUCKET, 'was-appendable.bin')?.toString()).toBe('replaced');
  });

  it('refuses every append with refuseAppends, and anything past 5 GB with 400 EntityTooLarge', async () => {
    const cos = client();
    emulator.setFaults({ refuseAppends: true });
    await expect(cos.appendObject({ ...at, Key: 'refused.bin', Position: 0, ...streamOf(Buffer.from('x')) })).rejects.toMatchObject({
      statusCode: 409, code: 'ObjectNotAppendable',
    });
    expect(emulator.getObject(BUCKET, 'refused.bin')).toBeUndefined();

    emulator.setFaults({ refuseAppends: false });
    await expect(cos.appendObject({ ...at, Key: 'huge.bin', Position: 5 * 1024 * MB, ...streamOf(Buffer.from('x')) })).rejects.toMatchObject({
      statusCode: 400, code: 'EntityTooLarge',
    });
  });

  it('requires append and position to be signed', async () => {
    await client().appendObject({ ...at, Key: 'signed.log', Position: 0, ...streamOf(Buffer.from('abc')) });
    // Signed without position: the position could have been changed on the way.
    const authorization = COS.getAuthorization({
      SecretId: SECRET_ID, SecretKey: SECRET_KEY, Method: 'POST', Key: 'signed.log', Query: { append: '' }, Headers: { host: HOST },
    });
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: emulator.port, method: 'POST', path: '/signed.log?append&position=3',
        headers: { host: HOST, authorization, 'content-length': 1 },
      }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end('x');
    });
    expect(answer.status).toBe(403);
    expect(answer.body).toContain('<Code>AccessDenied</Code>');
    expect(emulator.getObject(BUCKET, 'signed.log')?.toString()).toBe('abc');
  });

  it('applies an append whose answer is lost, which a resent Buffer body then meets as a 409', async () => {
    const cos = client();
    emulator.setFaults({ lostResponseRate: 1 });
    const error: unknown = await cos.appendObject({ ...at, Key: 'lost.log', Position: 0, ...streamOf(Buffer.from('once')) })
      .catch((err: unknown) => err);
    expect(error).toMatchObject({ code: expect.stringMatching(/^E[A-Z]+$/) });
    expect(error).not.toHaveProperty('statusCode');
    expect(emulator.getObject(BUCKET, 'lost.log')?.toString()).toBe('once');
    expect(lastRequest()).toMatchObject({ method: 'POST', status: 0, fault: 'lostResponse' });

    // With a Buffer the SDK core resends by itself: the first request is applied, the second
    // (no longer at the object's length) gets the 409. This is why the store streams appends.
    emulator.requests.length = 0;
    const draws = [0, 1];
    emulator.setFaults({ random: () => draws.shift() ?? 1 });
    await expect(cos.appendObject({ ...at, Key: 'lost.log', Position: 4, Body: Buffer.from('-twice?') })).rejects.toMatchObject({
      statusCode: 409, code: 'PositionNotEqualToLength', headers: { 'x-cos-next-append-position': '11' },
    });
    expect(emulator.requests.map((r) => `${r.status} ${r.fault ?? ''}`)).toEqual(['0 lostResponse', '409 ']);
    expect(emulator.getObject(BUCKET, 'lost.log')?.toString()).toBe('once-twice?');
  });

  it('answers everything 503 during an outage, then recovers', async () => {
    const cos = client();
    emulator.setOutage(true);
    await expect(cos.appendObject({ ...at, Key: 'outage.log', Position: 0, ...streamOf(Buffer.from('x')) })).rejects.toMatchObject({
      statusCode: 503, code: 'ServiceUnavailable',
    });
    expect(lastRequest()).toMatchObject({ status: 503, fault: 'outage' });
    emulator.setOutage(false);
    await cos.appendObject({ ...at, Key: 'outage.log', Position: 0, ...streamOf(Buffer.from('x')) });
    expect(emulator.getObject(BUCKET, 'outage.log')?.toString()).toBe('x');
  });
});
