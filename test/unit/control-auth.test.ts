/**
 * Stop over HTTP needs the deployment's CONTROL_SECRET as a bearer token; checked through the real
 * handler with API-gateway and function-URL events, against the TRTC API emulator (which counts
 * every request it gets, accepted or not).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecordHandler } from '../../functions/scf-record';
import { authorizeControl, ControlAuthError, httpHeaders, secretsMatch } from '../../functions/scf-record/http-event';
import { readConfig } from '../../shared/config';
import { redact } from '../../shared/redact';
import { startTrtcApiEmulator, type TrtcApiEmulator } from '../emulators/trtc-api-emulator';

const apiKeys = { secretId: 'AKIDcontrolAuthTEST', secretKey: 'control-auth-api-secret-key' };
const controlSecret = 'ctl-5b1e0c9a7f3d4e21a8c6b0f2d9e4a7c1';
const wrongSecret = 'ctl-ffffffffffffffffffffffffffffffff';
const stop = { Action: 'Stop', SdkAppId: 1400000001, RoomId: 4321, UserId: 'recorder_9' };

let trtc: TrtcApiEmulator;
beforeAll(async () => {
  trtc = await startTrtcApiEmulator(apiKeys);
});
afterAll(async () => {
  await trtc?.close();
});

const env = (extra: Record<string, string> = {}) => ({
  TRTC_API_ENDPOINT: trtc.endpoint,
  TENCENTCLOUD_SECRETID: apiKeys.secretId,
  TENCENTCLOUD_SECRETKEY: apiKeys.secretKey,
  LOG_LEVEL: 'debug',
  ...extra,
});

/** What the API gateway delivers (headers as the client sent them). */
const gatewayEvent = (headers: Record<string, string>, body: unknown = stop) => ({
  requestContext: { serviceId: 'service-test', path: '/record', httpMethod: 'POST', requestId: 'gw-1', stage: 'release' },
  httpMethod: 'POST',
  path: '/record',
  headers: { 'content-type': 'application/json', host: 'service-test.gz.apigw.tencentcs.com', ...headers },
  body: JSON.stringify(body),
  isBase64Encoded: false,
});

/** What a function URL delivers: the method under requestContext.http, the body base64. */
const functionUrlEvent = (headers: Record<string, string>, body: unknown = stop) => ({
  requestContext: { http: { method: 'POST', path: '/' } },
  headers: { 'Content-Type': 'application/json', ...headers },
  body: Buffer.from(JSON.stringify(body)).toString('base64'),
  isBase64Encoded: true,
});

interface HttpAnswer {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** Runs one invocation, capturing its log lines, and says how many requests reached the TRTC API. */
async function invoke(event: unknown, extraEnv: Record<string, string> = {}) {
  const before = trtc.requests.length;
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  let answer: unknown;
  try {
    answer = await createRecordHandler({ env: env(extraEnv) })(event, { request_id: 'auth-test' });
  } finally {
    process.stderr.write = write;
  }
  return { answer, reachedTrtc: trtc.requests.length - before, log: lines.join('') };
}

const shapes = [
  ['API gateway', gatewayEvent],
  ['function URL', functionUrlEvent],
] as const;

describe.each(shapes)('HTTP Stop through %s', (_shape, makeEvent) => {
  it('without an Authorization header: 401 with a Bearer challenge, and nothing reaches TRTC', async () => {
    const { answer, reachedTrtc } = await invoke(makeEvent({}), { CONTROL_SECRET: controlSecret });
    const response = answer as HttpAnswer;
    expect(response.statusCode).toBe(401);
    expect(response.headers['WWW-Authenticate']).toBe('Bearer realm="scf-record"');
    expect(JSON.parse(response.body)).toMatchObject({ RequestId: 'auth-test', Error: { Code: 'Unauthorized' } });
    expect(reachedTrtc).toBe(0);
  });

  it('with a wrong secret: 401 (invalid_token), nothing reaches TRTC, and neither secret is echoed or logged', async () => {
    const { answer, reachedTrtc, log } = await invoke(makeEvent({ Authorization: `Bearer ${wrongSecret}` }), { CONTROL_SECRET: controlSecret });
    const response = answer as HttpAnswer;
    expect(response.statusCode).toBe(401);
    expect(response.headers['WWW-Authenticate']).toBe('Bearer realm="scf-record", error="invalid_token"');
    expect(reachedTrtc).toBe(0);
    expect(log).toContain('"status":401');
    for (const text of [JSON.stringify(response), log]) {
      expect(text).not.toContain(wrongSecret);
      expect(text).not.toContain(controlSecret);
    }
  });

  it('with the right secret: RemoveUser reaches the TRTC API, and the secret is not logged', async () => {
    const callsBefore = trtc.calls.length;
    const { answer, reachedTrtc, log } = await invoke(makeEvent({ Authorization: `Bearer ${controlSecret}` }), { CONTROL_SECRET: controlSecret });
    const response = answer as HttpAnswer;
    expect(response.statusCode, response.body).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({ Action: 'Stop', RoomId: 4321, UserId: 'recorder_9', TrtcRequestId: expect.any(String) });
    expect(reachedTrtc).toBe(1);
    expect(trtc.calls.slice(callsBefore)).toEqual([expect.objectContaining({ action: 'RemoveUser', params: { SdkAppId: 1400000001, RoomId: 4321, UserIds: ['recorder_9'] } })]);
    expect(log).not.toContain(controlSecret);
  });

  it('when the deployment has no CONTROL_SECRET: 403 saying HTTP Stop is disabled, even with a header', async () => {
    for (const headers of [{}, { Authorization: `Bearer ${controlSecret}` }] as Array<Record<string, string>>) {
      const { answer, reachedTrtc } = await invoke(makeEvent(headers));
      const response = answer as HttpAnswer;
      expect(response.statusCode).toBe(403);
      expect(JSON.parse(response.body).Error).toMatchObject({ Code: 'HttpStopDisabled', Message: expect.stringContaining('no CONTROL_SECRET, so Stop over HTTP is disabled') });
      expect(reachedTrtc).toBe(0);
    }
  });

  it('reads the header name in any case, and the scheme in any case', async () => {
    for (const [name, scheme] of [['authorization', 'Bearer'], ['AUTHORIZATION', 'bearer'], ['AuThOrIzAtIoN', 'BEARER']] as const) {
      const { answer, reachedTrtc } = await invoke(makeEvent({ [name]: `${scheme} ${controlSecret}` }), { CONTROL_SECRET: controlSecret });
      expect((answer as HttpAnswer).statusCode, name).toBe(200);
      expect(reachedTrtc).toBe(1);
    }
  });

  it('takes the secret from X-Control-Authorization when the trigger signs Authorization itself', async () => {
    const gatewaySignature = 'hmac id="AKIDgateway", algorithm="hmac-sha1", headers="date source", signature="c2lnbmF0dXJl"';
    const signed = await invoke(makeEvent({ Authorization: gatewaySignature, 'X-Control-Authorization': `Bearer ${controlSecret}` }), { CONTROL_SECRET: controlSecret });
    expect((signed.answer as HttpAnswer).statusCode).toBe(200);
    const unsigned = await invoke(makeEvent({ Authorization: gatewaySignature }), { CONTROL_SECRET: controlSecret });
    expect((unsigned.answer as HttpAnswer).statusCode).toBe(401);
    expect(unsigned.reachedTrtc).toBe(0);
  });
});

describe('what is not gated, and what is refused as configuration', () => {
  it('a console (direct) Stop still works without a header or a CONTROL_SECRET', async () => {
    const { answer, reachedTrtc } = await invoke(stop);
    expect(answer).toMatchObject({ Action: 'Stop', RoomId: 4321, TrtcRequestId: expect.any(String) });
    expect(reachedTrtc).toBe(1);
  });

  it('a Record over HTTP is not asked for the control secret', async () => {
    const record = {
      SdkAppId: 1400000001,
      RoomId: 4321,
      UserId: 'recorder_9',
      UserSig: 'eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwpklqUWpAFJ*V34_',
      CosConfig: { Region: 'ap-guangzhou', Bucket: 'media-1250000000', Path: '/records/' },
    };
    // The Electron room, which cannot load here: the recording itself reports that, past any authorisation.
    const { answer, reachedTrtc } = await invoke(gatewayEvent({}, record), { CONTROL_SECRET: controlSecret, COS_ENDPOINT: 'http://127.0.0.1:1', TRTC_ROOM_SDK: 'electron' });
    const response = answer as HttpAnswer;
    expect(response.statusCode).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({ Error: { Code: 'TrtcSdkUnavailable' } });
    expect(reachedTrtc).toBe(0);
  });

  it('refuses (403) a CONTROL_SECRET that is too short or an unresolved ${env:…} reference', async () => {
    for (const configured of ['short-secret', '${env:CONTROL_SECRET}']) {
      const { answer, reachedTrtc } = await invoke(gatewayEvent({ Authorization: `Bearer ${configured}` }), { CONTROL_SECRET: configured });
      expect((answer as HttpAnswer).statusCode, configured).toBe(403);
      expect(reachedTrtc).toBe(0);
    }
  });

  it('reads CONTROL_SECRET (trimmed) through readConfig', () => {
    expect(readConfig({ CONTROL_SECRET: `  ${controlSecret}\n` }).controlSecret).toBe(controlSecret);
    expect(readConfig({ CONTROL_SECRET: '   ' }).controlSecret).toBeUndefined();
  });
});

describe('the pieces', () => {
  it('compares secrets of any length in constant time, over SHA-256 digests', () => {
    expect(secretsMatch(controlSecret, controlSecret)).toBe(true);
    expect(secretsMatch(wrongSecret, controlSecret)).toBe(false);
    expect(secretsMatch('', controlSecret)).toBe(false);
    expect(secretsMatch(`${controlSecret}x`, controlSecret)).toBe(false);
  });

  it('takes headers from either event shape, names lowercased, and none from a direct invocation', () => {
    expect(httpHeaders(functionUrlEvent({ 'X-Control-Authorization': 'Bearer a' }))).toMatchObject({ 'x-control-authorization': 'Bearer a', 'content-type': 'application/json' });
    expect(httpHeaders(JSON.stringify(gatewayEvent({ AUTHORIZATION: 'Bearer b' })))).toMatchObject({ authorization: 'Bearer b' });
    expect(httpHeaders(stop)).toEqual({});
  });

  it('does not accept a bearer token that is only part of a folded, repeated header', () => {
    const headers = httpHeaders({ httpMethod: 'POST', body: '{}', headers: { authorization: [`Bearer ${controlSecret}`, 'Bearer other'] } });
    expect(() => authorizeControl(headers, controlSecret)).toThrow(ControlAuthError);
  });

  it('masks every header that carries a secret before anything could log it (shared/redact)', () => {
    const headers = {
      Authorization: `Bearer ${controlSecret}`,
      'x-control-authorization': `Bearer ${controlSecret}`,
      'X-Scf-Secret-Id': 'AKIDfromheader',
      'X-Scf-Secret-Key': 'secret-key-from-header',
      'X-Scf-Session-Token': 'token-from-header',
      'X-Scf-Request-Id': 'req-1',
    };
    const masked = redact({ headers });
    expect(masked.headers).toEqual({
      Authorization: '***',
      'x-control-authorization': '***',
      'X-Scf-Secret-Id': '***',
      'X-Scf-Secret-Key': '***',
      'X-Scf-Session-Token': '***',
      'X-Scf-Request-Id': 'req-1',
    });
  });
});
