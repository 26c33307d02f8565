import * as crypto from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import OSS from 'ali-oss';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startOssEmulator, type OssEmulator } from './oss-emulator';

const ACCESS_KEY_ID = 'LTAI-test-key';
const ACCESS_KEY_SECRET = 'test-secret';
const BUCKET = 'test-bucket';

/** Options the SDK honours but @types/ali-oss does not declare. */
type ClientOptions = Partial<OSS.Options> & { sldEnable?: boolean; retryMax?: number };

let emulator: OssEmulator;

beforeEach(async () => {
  emulator = await startOssEmulator({ accessKeyId: ACCESS_KEY_ID, accessKeySecret: ACCESS_KEY_SECRET });
});

afterEach(async () => {
  await emulator.close();
});

function client(overrides: ClientOptions = {}): OSS {
  const options: ClientOptions = {
    accessKeyId: ACCESS_KEY_ID,
    accessKeySecret: ACCESS_KEY_SECRET,
    endpoint: emulator.endpoint,
    region: 'oss-cn-hangzhou',
    bucket: BUCKET,
    timeout: 5000,
    ...overrides,
  };
  return new OSS(options as OSS.Options);
}

function lastRequest() {
  const entry = emulator.requests.at(-1);
  if (!entry) throw new Error('no request reached the emulator');
  return entry;
}

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

describe.each([
  { signature: 'V1', authorizationV4: false },
  { signature: 'V4', authorizationV4: true },
])('signature $signature', ({ authorizationV4 }) => {
  it('round-trips put, get and head byte-exact', async () => {
    const oss = client({ authorizationV4 });
    const body = crypto.randomBytes(64 * 1024);

    const put = await oss.put('media/snapshot.jpg', body);
    expect(put.res.status).toBe(200);
    const expectedEtag = `"${crypto.createHash('md5').update(body).digest('hex').toUpperCase()}"`;
    expect(put.res.headers).toMatchObject({ etag: expectedEtag });

    const got = await oss.get('media/snapshot.jpg');
    expect(Buffer.compare(got.content as Buffer, body)).toBe(0);
    expect(got.res.headers).toMatchObject({ 'content-type': 'image/jpeg', etag: expectedEtag });

    const head = await oss.head('media/snapshot.jpg');
    expect(head.status).toBe(200);
    expect(head.res.headers).toMatchObject({
      'content-length': String(body.length),
      etag: expectedEtag,
      'x-oss-request-id': expect.stringMatching(/^[0-9A-F]{24}$/),
    });

    expect(emulator.getObject(BUCKET, 'media/snapshot.jpg')?.equals(body)).toBe(true);
    expect(emulator.objects.get(`${BUCKET}/media/snapshot.jpg`)?.contentType).toBe('image/jpeg');
  });

  it('answers a wrong secret with 403 SignatureDoesNotMatch, also on HEAD', async () => {
    await client({ authorizationV4 }).put('existing.txt', Buffer.from('x'));
    const impostor = client({ authorizationV4, accessKeySecret: 'not-the-secret' });

    await expect(impostor.put('denied.txt', Buffer.from('nope'))).rejects.toMatchObject({
      status: 403,
      code: 'SignatureDoesNotMatch',
      requestId: expect.stringMatching(/^[0-9A-F]{24}$/),
    });
    // HEAD has no body; the SDK reads the code from the x-oss-err header.
    await expect(impostor.head('existing.txt')).rejects.toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
    expect(emulator.getObject(BUCKET, 'denied.txt')).toBeUndefined();
  });

  it('answers an unknown access key id with 403 InvalidAccessKeyId', async () => {
    await expect(client({ authorizationV4, accessKeyId: 'LTAI-unknown' }).get('any.txt')).rejects.toMatchObject({
      status: 403,
      code: 'InvalidAccessKeyId',
    });
  });

  it('assembles a multipart upload byte-exact', async () => {
    const body = crypto.randomBytes(3 * 1024 * 1024 + 777);
    const partSize = 102400 * 5;
    const partCount = Math.ceil(body.length / partSize);
    // V1 uploads from a Buffer, V4 from a file path: the two inputs multipartUpload accepts.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'oss-emulator-'));
    try {
      const file = path.join(dir, 'recording.mp4');
      await fs.writeFile(file, body);
      const source = authorizationV4 ? file : body;

      const result = await client({ authorizationV4 }).multipartUpload('recordings/room-1.mp4', source, { partSize, parallel: 3 });

      expect(result.res.status).toBe(200);
      expect(emulator.getObject(BUCKET, 'recordings/room-1.mp4')?.equals(body)).toBe(true);
      expect(emulator.objects.get(`${BUCKET}/recordings/room-1.mp4`)).toMatchObject({
        contentType: 'video/mp4',
        etag: expect.stringMatching(new RegExp(`^"[0-9A-F]{32}-${partCount}"$`)),
      });
      const partUploads = emulator.requests.filter((r) => r.method === 'PUT' && r.query.includes('partNumber='));
      expect(partUploads).toHaveLength(partCount);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('appends with append and position signed, and reports the object as Appendable', async () => {
    const oss = client({ authorizationV4 });
    const first = Buffer.from('first chunk|');
    const second = crypto.randomBytes(70_000);

    const created = await oss.append('live/room.flv', first, { position: '0', mime: 'video/x-flv' });
    expect(created.nextAppendPosition).toBe(String(first.length));
    const appended = await oss.append('live/room.flv', second, { position: String(first.length) });
    expect(appended.nextAppendPosition).toBe(String(first.length + second.length));
    expect(lastRequest()).toMatchObject({ method: 'POST', query: `append=&position=${first.length}`, status: 200 });

    const whole = Buffer.concat([first, second]);
    expect(emulator.getObject(BUCKET, 'live/room.flv')?.equals(whole)).toBe(true);
    const head = await oss.head('live/room.flv');
    expect(head.res.headers).toMatchObject({
      'x-oss-object-type': 'Appendable',
      'x-oss-next-append-position': String(whole.length),
      'content-length': String(whole.length),
      'content-type': 'video/x-flv',
    });
    expect((await oss.get('live/room.flv')).res.headers).toMatchObject({ 'x-oss-object-type': 'Appendable' });

    // A wrong secret is still a signature mismatch, not an append error.
    await expect(client({ authorizationV4, accessKeySecret: 'not-the-secret' }).append('live/room.flv', first, { position: String(whole.length) }))
      .rejects.toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });

    // The position is signed: moved on the way, the request no longer matches its signature.
    const tampered = client({ authorizationV4 });
    const holder = tampered as unknown as { urllib: { request: (url: string, params: unknown) => Promise<unknown> } };
    const request = holder.urllib.request.bind(holder.urllib);
    holder.urllib = { request: (url, params) => request(url.replace(`position=${whole.length}`, 'position=0'), params) };
    await expect(tampered.append('live/room.flv', first, { position: String(whole.length) }))
      .rejects.toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
    expect(emulator.getObject(BUCKET, 'live/room.flv')?.equals(whole)).toBe(true);
  });

  it('round-trips awkward keys through put, get, head, list and delete', async () => {
    const oss = client({ authorizationV4 });
    for (const [index, key] of AWKWARD_KEYS.entries()) {
      const body = Buffer.from(`body of key ${index}`);
      await oss.put(key, body);
      expect(emulator.getObject(BUCKET, key)?.equals(body), key).toBe(true);
      expect(Buffer.compare((await oss.get(key)).content as Buffer, body), key).toBe(0);
      expect((await oss.head(key)).status, key).toBe(200);
    }

    const listed = await oss.list({ 'max-keys': 100 }, {});
    expect(listed.objects.map((o) => o.name).sort()).toEqual([...AWKWARD_KEYS].sort());

    for (const key of AWKWARD_KEYS) await oss.delete(key);
    expect(emulator.listKeys(BUCKET)).toEqual([]);
  });
});

describe('objects', () => {
  it('stores a chunked stream upload', async () => {
    const chunks = [crypto.randomBytes(10_000), crypto.randomBytes(20_000)];
    const result = await client().putStream('streams/chunked.bin', Readable.from(chunks));
    expect(result.res.status).toBe(200);
    expect(emulator.getObject(BUCKET, 'streams/chunked.bin')?.equals(Buffer.concat(chunks))).toBe(true);
  });

  it('rejects a body whose Content-MD5 does not match with 400 InvalidDigest', async () => {
    const wrongMd5 = crypto.createHash('md5').update('something else').digest('base64');
    await expect(client().put('digest.txt', Buffer.from('payload'), { headers: { 'Content-MD5': wrongMd5 } })).rejects.toMatchObject({
      status: 400,
      code: 'InvalidDigest',
    });
    expect(emulator.getObject(BUCKET, 'digest.txt')).toBeUndefined();
  });

  it('answers missing keys with 404 NoSuchKey, and HEAD with a bodiless 404', async () => {
    const oss = client();
    await oss.put('gone.txt', Buffer.from('soon gone'));
    const deleted = await oss.delete('gone.txt');
    expect(deleted.res.status).toBe(204);

    await expect(oss.get('gone.txt')).rejects.toMatchObject({ status: 404, code: 'NoSuchKey' });
    await expect(oss.head('gone.txt')).rejects.toMatchObject({ status: 404, name: 'NoSuchKeyError' });
  });

  it('copies an object with x-oss-copy-source', async () => {
    const oss = client();
    const body = Buffer.from('copy me');
    await oss.put('source/a b.txt', body);
    const copied = await oss.copy('target/copy.txt', 'source/a b.txt');
    expect(copied.res.status).toBe(200);
    expect(emulator.getObject(BUCKET, 'target/copy.txt')?.equals(body)).toBe(true);
  });

  it('serves path-style requests when the Host is not virtual-host-like', async () => {
    // With an IP endpoint the SDK sends Host <bucket>.<region>.aliyuncs.com even with sldEnable.
    await client({ endpoint: `http://localhost:${emulator.port}`, sldEnable: true }).put('path/style.txt', Buffer.from('path style'));
    expect(lastRequest()).toMatchObject({ method: 'PUT', bucket: BUCKET, key: 'path/style.txt', status: 200 });
    expect(emulator.getObject(BUCKET, 'path/style.txt')?.toString()).toBe('path style');
  });

  it('aborts a multipart upload, after which its parts are refused', async () => {
    const oss = client();
    const { uploadId } = await oss.initMultipartUpload('aborted.bin');
    await oss.abortMultipartUpload('aborted.bin', uploadId);
    await expect(oss.completeMultipartUpload('aborted.bin', uploadId, [{ number: 1, etag: '"00"' }])).rejects.toMatchObject({
      status: 404,
      code: 'NoSuchUpload',
    });
    expect(emulator.getObject(BUCKET, 'aborted.bin')).toBeUndefined();
  });
});

describe('listing', () => {
  const keys = ['photos/2024/a.jpg', 'photos/2024/b.jpg', 'photos/2025/c.jpg', 'videos/d.mp4'];

  beforeEach(async () => {
    const oss = client();
    for (const key of keys) await oss.put(key, Buffer.from(key));
  });

  it('lists v1 with a prefix, owners, delimiters and markers', async () => {
    const oss = client();
    const photos = await oss.list({ prefix: 'photos/', 'max-keys': 100 }, {});
    expect(photos.objects.map((o) => o.name)).toEqual(keys.slice(0, 3));
    expect(photos.objects[0]).toMatchObject({ size: 'photos/2024/a.jpg'.length, owner: { id: expect.any(String) } });

    const folders = await oss.list({ prefix: 'photos/', delimiter: '/', 'max-keys': 100 }, {});
    expect(folders.prefixes).toEqual(['photos/2024/', 'photos/2025/']);
    expect(folders.objects).toEqual([]);

    const firstPage = await oss.list({ 'max-keys': 2 }, {});
    expect(firstPage).toMatchObject({ isTruncated: true, nextMarker: 'photos/2024/b.jpg' });
    const secondPage = await oss.list({ 'max-keys': 2, marker: firstPage.nextMarker ?? '' }, {});
    expect(secondPage.objects.map((o) => o.name)).toEqual(keys.slice(2));
    expect(secondPage.isTruncated).toBe(false);
  });

  it('lists v2 with a prefix and continuation tokens, for V1 and V4 signatures', async () => {
    for (const authorizationV4 of [false, true]) {
      const oss = client({ authorizationV4 });
      const firstPage = await oss.listV2({ prefix: 'photos/', 'max-keys': 2 });
      expect(firstPage.objects.map((o) => o.name)).toEqual(keys.slice(0, 2));
      expect(firstPage.isTruncated).toBe(true);

      const secondPage = await oss.listV2({ prefix: 'photos/', 'max-keys': 2, 'continuation-token': firstPage.nextContinuationToken });
      expect(secondPage.objects.map((o) => o.name)).toEqual(keys.slice(2, 3));
      expect(secondPage.isTruncated).toBe(false);
    }
    expect(emulator.listKeys(BUCKET, 'videos/')).toEqual(['videos/d.mp4']);
  });
});

describe('security token', () => {
  it('requires the configured STS token', async () => {
    const sts = await startOssEmulator({ accessKeyId: ACCESS_KEY_ID, accessKeySecret: ACCESS_KEY_SECRET, securityToken: 'sts-token-1' });
    try {
      const withToken = (stsToken?: string) => client({ endpoint: sts.endpoint, stsToken });
      await expect(withToken().put('a.txt', Buffer.from('a'))).rejects.toMatchObject({ status: 403, code: 'InvalidAccessKeyId' });
      await expect(withToken('forged').put('a.txt', Buffer.from('a'))).rejects.toMatchObject({ status: 403, code: 'InvalidAccessKeyId' });
      expect((await withToken('sts-token-1').put('a.txt', Buffer.from('a'))).res.status).toBe(200);
      expect(sts.requests.map((r) => r.status)).toEqual([403, 403, 200]);
    } finally {
      await sts.close();
    }
  });

  it('answers SecurityTokenExpired until setCredentials installs a new token', async () => {
    emulator.setCredentials({ accessKeyId: ACCESS_KEY_ID, accessKeySecret: ACCESS_KEY_SECRET, securityToken: 'token-1' });
    emulator.setFaults({ expiredTokenUntilRefresh: true });
    const stale = client({ stsToken: 'token-1' });

    await expect(stale.put('a.txt', Buffer.from('a'))).rejects.toMatchObject({ status: 403, code: 'SecurityTokenExpired' });
    expect(lastRequest()).toMatchObject({ status: 403, fault: 'expiredToken' });

    emulator.setCredentials({ accessKeyId: 'STS.new-key', accessKeySecret: 'new-secret', securityToken: 'token-2' });
    const refreshed = client({ accessKeyId: 'STS.new-key', accessKeySecret: 'new-secret', stsToken: 'token-2' });
    expect((await refreshed.put('a.txt', Buffer.from('a'))).res.status).toBe(200);
    await expect(stale.get('a.txt')).rejects.toMatchObject({ status: 403, code: 'SecurityTokenExpired' });
  });
});

describe('fault injection', () => {
  it('answers every request with an injected error status when errorRate is 1', async () => {
    // Each request draws twice: once for the error roll, once to pick the status.
    const draws = [0, 0.1, 0, 0.5, 0, 0.9];
    emulator.setFaults({ errorRate: 1, random: () => draws.shift() ?? 0 });
    const oss = client();

    await expect(oss.put('a.txt', Buffer.from('a'))).rejects.toMatchObject({ status: 500, code: 'InternalError' });
    await expect(oss.get('a.txt')).rejects.toMatchObject({ status: 503, code: 'ServiceUnavailable' });
    await expect(oss.head('a.txt')).rejects.toMatchObject({ status: 429, code: 'TooManyRequests' });
    expect(emulator.requests.map((r) => [r.status, r.fault])).toEqual([[500, 'error'], [503, 'error'], [429, 'error']]);
    expect(emulator.getObject(BUCKET, 'a.txt')).toBeUndefined();
  });

  it('resets connections into network errors, which the SDK retries with retryMax', async () => {
    emulator.setFaults({ resetRate: 1 });
    const body = crypto.randomBytes(256 * 1024);

    await expect(client().put('reset.bin', body)).rejects.toMatchObject({ status: -1 });
    await expect(client().get('reset.bin')).rejects.toMatchObject({ status: -1 });
    // The SDK waits a fixed 500 ms before each retry.
    await expect(client({ retryMax: 1 }).put('reset.bin', body)).rejects.toMatchObject({ status: -1 });
    expect(emulator.requests.map((r) => [r.method, r.status, r.fault])).toEqual([
      ['PUT', 0, 'reset'], ['GET', 0, 'reset'], ['PUT', 0, 'reset'], ['PUT', 0, 'reset'],
    ]);

    emulator.setFaults({ resetRate: 0 });
    expect((await client().put('reset.bin', body)).res.status).toBe(200);
  });

  it('delays answers when slowRate is 1', async () => {
    emulator.setFaults({ slowRate: 1, slowMs: 300 });
    const started = Date.now();
    await client().put('slow.txt', Buffer.from('slow'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(lastRequest()).toMatchObject({ status: 200, fault: 'slow' });
  });
});

describe('append', () => {
  it('answers a wrong position with 409 PositionNotEqualToLength and the length in x-oss-next-append-position', async () => {
    const oss = client();
    await oss.append('a.log', Buffer.from('12345'), { position: '0' });
    // ali-oss keeps no headers on its errors; the answer itself is read here.
    const answers: Array<{ status: number; headers: Record<string, unknown> }> = [];
    const http = (oss as unknown as { urllib: { request: (url: string, params: unknown) => Promise<{ status: number; headers: Record<string, unknown> }> } });
    const request = http.urllib.request.bind(http.urllib);
    http.urllib = { request: async (url, params) => {
      const answer = await request(url, params);
      answers.push(answer);
      return answer;
    } };

    for (const position of ['0', '3', '9']) {
      await expect(oss.append('a.log', Buffer.from('x'), { position })).rejects.toMatchObject({ status: 409, code: 'PositionNotEqualToLength' });
    }
    // A missing object is 0 bytes long.
    await expect(oss.append('missing.log', Buffer.from('x'), { position: '4' })).rejects.toMatchObject({ status: 409, code: 'PositionNotEqualToLength' });
    expect(answers.map((a) => [a.status, a.headers['x-oss-next-append-position']])).toEqual([[409, '5'], [409, '5'], [409, '5'], [409, '0']]);
    expect(emulator.getObject(BUCKET, 'a.log')?.toString()).toBe('12345');
  });

  it('refuses to append to a normal object (409 ObjectNotAppendable); a put turns an appendable object normal', async () => {
    const oss = client();
    await oss.put('normal.bin', Buffer.from('normal'));
    await expect(oss.append('normal.bin', Buffer.from('x'), { position: '6' })).rejects.toMatchObject({ status: 409, code: 'ObjectNotAppendable' });
    expect((await oss.head('normal.bin')).res.headers).toMatchObject({ 'x-oss-object-type': 'Normal' });

    await oss.append('was-appendable.bin', Buffer.from('abc'), { position: '0' });
    await oss.put('was-appendable.bin', Buffer.from('replaced'));
    const head = await oss.head('was-appendable.bin');
    expect(head.res.headers).toMatchObject({ 'x-oss-object-type': 'Normal' });
    expect(head.res.headers).not.toHaveProperty('x-oss-next-append-position');
    await expect(oss.append('was-appendable.bin', Buffer.from('x'), { position: '8' })).rejects.toMatchObject({ status: 409, code: 'ObjectNotAppendable' });
    expect(emulator.getObject(BUCKET, 'was-appendable.bin')?.toString()).toBe('replaced');
  });

  it('refuses every append with refuseAppends, and anything past 5 GB with 400 EntityTooLarge', async () => {
    const oss = client();
    emulator.setFaults({ refuseAppends: true });
    await expect(oss.append('refused.bin', Buffer.from('x'), { position: '0' })).rejects.toMatchObject({ status: 409, code: 'ObjectNotAppendable' });
    expect(emulator.getObject(BUCKET, 'refused.bin')).toBeUndefined();

    emulator.setFaults({ refuseAppends: false });
    await expect(oss.append('huge.bin', Buffer.from('x'), { position: String(5 * 1024 ** 3) })).rejects.toMatchObject({
      status: 400, code: 'EntityTooLarge',
    });
  });

  it('applies an append whose answer is lost: the SDK sees a network error', async () => {
    emulator.setFaults({ lostResponseRate: 1 });
    await expect(client().append('lost.log', Buffer.from('once'), { position: '0' })).rejects.toMatchObject({ status: -1 });
    expect(emulator.getObject(BUCKET, 'lost.log')?.toString()).toBe('once');
    expect(lastRequest()).toMatchObject({ method: 'POST', status: 0, fault: 'lostResponse' });

    // Also a put: stored, unanswered.
    await expect(client().put('lost.bin', Buffer.from('stored'))).rejects.toMatchObject({ status: -1 });
    expect(emulator.getObject(BUCKET, 'lost.bin')?.toString()).toBe('stored');
  });

  it('answers everything 503 during an outage, then recovers', async () => {
    emulator.setOutage(true);
    await expect(client().append('outage.log', Buffer.from('x'), { position: '0' })).rejects.toMatchObject({ status: 503, code: 'ServiceUnavailable' });
    await expect(client().head('outage.log')).rejects.toMatchObject({ status: 503 });
    expect(emulator.requests.map((r) => [r.status, r.fault])).toEqual([[503, 'outage'], [503, 'outage']]);
    emulator.setOutage(false);
    await client().append('outage.log', Buffer.from('x'), { position: '0' });
    expect(emulator.getObject(BUCKET, 'outage.log')?.toString()).toBe('x');
  });
});
