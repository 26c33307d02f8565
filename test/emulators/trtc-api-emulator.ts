/**
 * A local TencentCloud API 3.0 endpoint for TRTC's RemoveUser and RemoveUserByStrRoomId.
 *
 * It verifies TC3-HMAC-SHA256 signatures the way the API does (credential scope service `trtc`,
 * at least content-type and host signed, timestamps within five minutes), answers with the API's
 * JSON and error codes (always HTTP 200, as the API does), validates the actions' parameters and
 * records every accepted call. A test can hook accepted calls, and make the next calls fail with a
 * given code.
 *
 * It also stands in for what TRTC's servers tell a user's SDK: a room simulator in another process
 * (`npm run scf:serve -- --room sim:…` with TRTC_API_ENDPOINT pointing here) watches
 * `GET /~emulator/room-events?SdkAppId=…&RoomId=…|StrRoomId=…&UserId=…`, an event stream that
 * sends `event: kicked` when an accepted RemoveUser (or RemoveUserByStrRoomId) names that user in
 * that room; the simulated room then exits with reason `kicked`, as the SDK reports it.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { headerValue, readBody } from './emulator-kit';

export interface TrtcApiEmulatorOptions {
  secretId: string;
  secretKey: string;
  /** If set, every request must carry `X-TC-Token` equal to it (temporary keys). */
  sessionToken?: string;
  /** The server's clock in ms, for signature-expiry tests. */
  now?: () => number;
  /** Listen on this port of 127.0.0.1 (npm run emulators); default any free one. */
  port?: number;
}

export type RemoveUserAction = 'RemoveUser' | 'RemoveUserByStrRoomId';

export interface RemoveUserCall {
  action: RemoveUserAction;
  params: { SdkAppId: number; RoomId: number | string; UserIds: string[] };
  /** The X-TC-Region it was made in. */
  region: string;
  /** Watchers of room events (simulated rooms) told they were kicked by this call. */
  kickedWatchers: number;
}

/** Who watches room events: a user in a room, as the SDK entered it. */
export interface RoomWatchTarget {
  sdkAppId: number;
  userId: string;
  /** Exactly one of them: RemoveUser kicks from a numeric room, RemoveUserByStrRoomId from a string one. */
  roomId?: number;
  strRoomId?: string;
}

/** The emulator's own path, outside the API (which is served at `/`). */
export const ROOM_EVENTS_PATH = '/~emulator/room-events';

export interface TrtcApiRequest {
  /** X-TC-Action, when present. */
  action?: string;
  /** The error code answered; absent for an accepted call. */
  errorCode?: string;
}

export interface TrtcApiEmulator {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** Accepted calls, in order. */
  calls: RemoveUserCall[];
  /** Every API request, accepted or not (room-event watchers are not API requests). */
  requests: TrtcApiRequest[];
  /** Room-event streams open now. */
  roomWatchers(): number;
  /** Called for each accepted call, before it is answered; a hook that throws makes the answer InternalError. */
  onRemoveUser(hook: (call: RemoveUserCall) => void): void;
  /** Answers the next `count` calls that would have been accepted with the error `code` instead. */
  failNext(count: number, code: string, message?: string): void;
  close(): Promise<void>;
}

const API_VERSION = '2019-07-22';
const SERVICE = 'trtc';
const ALGORITHM = 'TC3-HMAC-SHA256';
/** The API rejects a signature whose timestamp is more than five minutes from its clock. */
const MAX_CLOCK_SKEW_SECONDS = 5 * 60;
/** The regions RemoveUser and RemoveUserByStrRoomId accept. */
const SUPPORTED_REGIONS = new Set(['ap-beijing', 'ap-guangzhou', 'ap-singapore']);
const ACTIONS = new Set<string>(['RemoveUser', 'RemoveUserByStrRoomId']);
const MAX_USER_IDS = 10;
const SIGNATURE_FAILURE = 'The provided credentials could not be validated. Please check your signature is correct.';

/** An API error answer: `{"Response":{"Error":{"Code","Message"},"RequestId"}}`. */
class ApiError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

interface SignedRequest {
  secretId: string;
  date: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

export async function startTrtcApiEmulator(options: TrtcApiEmulatorOptions): Promise<TrtcApiEmulator> {
  const now = options.now ?? Date.now;
  const calls: RemoveUserCall[] = [];
  const requests: TrtcApiRequest[] = [];
  const hooks: Array<(call: RemoveUserCall) => void> = [];
  let pendingFault: { count: number; code: string; message: string } | undefined;
  const watchers = new Set<{ target: RoomWatchTarget; kick: (call: RemoveUserCall) => void }>();

  /** An event stream for one user in one room, ended by a RemoveUser that names them (or the client going away). */
  const watchRoomEvents = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const query = new URL(req.url ?? '/', 'http://emulator').searchParams;
    const target = roomWatchTarget(query);
    if (typeof target === 'string') {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`${target}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(`: watching for RemoveUser of ${target.userId}\n\n`);
    const watcher = {
      target,
      kick: (call: RemoveUserCall) => {
        watchers.delete(watcher);
        res.end(`event: kicked\ndata: ${JSON.stringify({ action: call.action, SdkAppId: call.params.SdkAppId, RoomId: call.params.RoomId, UserId: target.userId })}\n\n`);
      },
    };
    watchers.add(watcher);
    res.on('close', () => watchers.delete(watcher));
  };

  /** The watchers a call kicks: same application, same kind of room id and room, a user it names. */
  const kickWatchers = (call: RemoveUserCall): void => {
    for (const watcher of [...watchers]) {
      const { sdkAppId, userId, roomId, strRoomId } = watcher.target;
      const room = call.action === 'RemoveUser' ? roomId : strRoomId;
      if (sdkAppId !== call.params.SdkAppId || room !== call.params.RoomId || !call.params.UserIds.includes(userId)) continue;
      call.kickedWatchers++;
      watcher.kick(call);
    }
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === ROOM_EVENTS_PATH) return watchRoomEvents(req, res);
    const action = headerValue(req, 'x-tc-action');
    const logEntry: TrtcApiRequest = action === undefined ? {} : { action };
    requests.push(logEntry);
    const requestId = crypto.randomUUID();
    const answer = (response: Record<string, unknown>) => {
      const body = JSON.stringify({ Response: { ...response, RequestId: requestId } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    try {
      const body = await readBody(req);
      authenticate(req, body);
      const call = parseCall(req, body);
      if (pendingFault && pendingFault.count > 0) {
        pendingFault.count -= 1;
        throw new ApiError(pendingFault.code, pendingFault.message);
      }
      calls.push(call);
      kickWatchers(call);
      try {
        for (const hook of hooks) hook(call);
      } catch (err) {
        throw new ApiError('InternalError', `onRemoveUser hook failed: ${String(err)}`);
      }
      answer({});
    } catch (err) {
      const error = err instanceof ApiError ? err : new ApiError('InternalError', String(err));
      logEntry.errorCode = error.code;
      answer({ Error: { Code: error.code, Message: error.message } });
    }
  };

  const authenticate = (req: http.IncomingMessage, body: Buffer): void => {
    const signed = parseAuthorization(headerValue(req, 'authorization'));
    if (signed.secretId !== options.secretId) {
      throw new ApiError('AuthFailure.SecretIdNotFound', 'The SecretId is not found, please ensure that your SecretId is correct.');
    }
    const timestamp = headerValue(req, 'x-tc-timestamp') ?? '';
    if (!/^\d+$/.test(timestamp)) throw new ApiError('MissingParameter', 'The request is missing a valid X-TC-Timestamp.');
    if (Math.abs(now() / 1000 - Number(timestamp)) > MAX_CLOCK_SKEW_SECONDS) {
      throw new ApiError('AuthFailure.SignatureExpire', 'Signature expired, timestamp and server time differ by more than five minutes.');
    }
    if (options.sessionToken !== undefined && headerValue(req, 'x-tc-token') !== options.sessionToken) {
      throw new ApiError('AuthFailure.TokenFailure', 'The token is missing, invalid or expired.');
    }
    // Each check below reports the real message, plus what the emulator found, for debugging.
    const fail = (detail: string) => new ApiError('AuthFailure.SignatureFailure', `${SIGNATURE_FAILURE} (emulator: ${detail})`);
    if (signed.service !== SERVICE) throw fail(`credential scope service is '${signed.service}', expected '${SERVICE}'`);
    if (signed.date !== utcDate(Number(timestamp))) throw fail('credential scope date is not the UTC date of X-TC-Timestamp');
    if (!signed.signedHeaders.includes('content-type') || !signed.signedHeaders.includes('host')) {
      throw fail('SignedHeaders must include content-type and host');
    }
    const canonicalRequest = [
      req.method ?? '',
      (req.url ?? '/').split('?')[0],
      (req.url ?? '').split('?')[1] ?? '',
      signed.signedHeaders.map((name) => `${name}:${canonicalHeaderValue(req, name)}\n`).join(''),
      signed.signedHeaders.join(';'),
      sha256Hex(body),
    ].join('\n');
    const scope = `${signed.date}/${SERVICE}/tc3_request`;
    const stringToSign = [ALGORITHM, timestamp, scope, sha256Hex(canonicalRequest)].join('\n');
    const hmac = (key: crypto.BinaryLike, data: string) => crypto.createHmac('sha256', key).update(data).digest();
    const signingKey = hmac(hmac(hmac(`TC3${options.secretKey}`, signed.date), SERVICE), 'tc3_request');
    const expected = Buffer.from(crypto.createHmac('sha256', signingKey).update(stringToSign).digest('hex'));
    const given = Buffer.from(signed.signature);
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) throw fail('signature mismatch');
  };

  const parseCall = (req: http.IncomingMessage, body: Buffer): RemoveUserCall => {
    const version = headerValue(req, 'x-tc-version');
    if (version !== API_VERSION) throw new ApiError('NoSuchVersion', `The API version \`${version ?? ''}\` does not exist.`);
    const action = headerValue(req, 'x-tc-action') ?? '';
    if (!ACTIONS.has(action)) throw new ApiError('InvalidAction', `The action \`${action}\` does not exist.`);
    const region = headerValue(req, 'x-tc-region');
    if (!region) throw new ApiError('MissingParameter', 'The request is missing a required parameter `Region`.');
    if (!SUPPORTED_REGIONS.has(region)) throw new ApiError('UnsupportedRegion', `The region \`${region}\` is not supported by this action.`);
    if (req.method !== 'POST' || !/^application\/json\b/.test(headerValue(req, 'content-type') ?? '')) {
      throw new ApiError('UnsupportedProtocol', 'The emulator accepts POST with a JSON body only.');
    }
    return { action: action as RemoveUserAction, params: parseParams(action as RemoveUserAction, body), region, kickedWatchers: 0 };
  };

  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    requests,
    roomWatchers: () => watchers.size,
    onRemoveUser: (hook) => {
      hooks.push(hook);
    },
    failNext: (count, code, message = `Injected ${code}.`) => {
      pendingFault = { count, code, message };
    },
    close: () =>
      new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // The SDK's agent keeps sockets alive; without this close() would wait for them.
        server.closeAllConnections();
      }),
  };
}

/** The watch target from `SdkAppId`, `RoomId` or `StrRoomId`, and `UserId`; or what is wrong with them. */
function roomWatchTarget(query: URLSearchParams): RoomWatchTarget | string {
  const sdkAppId = Number(query.get('SdkAppId'));
  const userId = query.get('UserId') ?? '';
  const roomId = query.has('RoomId') ? Number(query.get('RoomId')) : undefined;
  const strRoomId = query.get('StrRoomId') ?? undefined;
  if (!Number.isSafeInteger(sdkAppId) || sdkAppId <= 0) return 'SdkAppId must be a positive integer';
  if (userId === '') return 'UserId is required';
  if ((roomId === undefined) === (strRoomId === undefined)) return 'give exactly one of RoomId and StrRoomId';
  if (roomId !== undefined && (!Number.isSafeInteger(roomId) || roomId <= 0)) return 'RoomId must be a positive integer';
  if (strRoomId === '') return 'StrRoomId must not be empty';
  return { sdkAppId, userId, ...(roomId !== undefined ? { roomId } : { strRoomId }) };
}

/**
 * The room simulator's side of ROOM_EVENTS_PATH: watches `endpoint` (the emulator) for a RemoveUser
 * of `target` and calls `kicked` once when one comes. `problem` hears, once, why no kick can come
 * (the emulator is not there, or `endpoint` is something else).
 */
export function watchRoomEvents(endpoint: string, target: RoomWatchTarget, handlers: { kicked(): void; problem(message: string): void }): { close(): void } {
  const url = new URL(ROOM_EVENTS_PATH, endpoint);
  url.searchParams.set('SdkAppId', String(target.sdkAppId));
  if (target.roomId !== undefined) url.searchParams.set('RoomId', String(target.roomId));
  else url.searchParams.set('StrRoomId', target.strRoomId ?? '');
  url.searchParams.set('UserId', target.userId);
  let closed = false;
  const problem = (message: string) => {
    if (!closed) handlers.problem(`${endpoint}: ${message}`);
    closed = true;
  };
  const request = http.get(url, (response) => {
    if (response.statusCode !== 200 || !String(response.headers['content-type']).startsWith('text/event-stream')) {
      response.resume();
      return problem(`answered ${response.statusCode} ${response.headers['content-type'] ?? ''} to ${ROOM_EVENTS_PATH}: not the TRTC API emulator`);
    }
    let pending = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      pending += chunk;
      for (let end = pending.indexOf('\n\n'); end >= 0; end = pending.indexOf('\n\n')) {
        const event = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (/^event: kicked$/m.test(event) && !closed) {
          closed = true;
          handlers.kicked();
        }
      }
    });
    response.on('end', () => problem('the emulator ended the room-event stream (it closed?)'));
    response.on('error', (error) => problem(`the room-event stream broke (${error.message})`));
  });
  request.on('error', (error) => problem(`cannot watch room events (${error.message})`));
  return {
    close: () => {
      closed = true;
      request.destroy();
    },
  };
}

/** `TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=a;b, Signature=<hex>` */
function parseAuthorization(header: string | undefined): SignedRequest {
  const invalid = () => new ApiError('AuthFailure.InvalidAuthorization', 'Authorization in the request header is invalid.');
  if (!header?.startsWith(`${ALGORITHM} `)) throw invalid();
  const fields = new Map(header.slice(ALGORITHM.length + 1).split(',').map((field) => {
    const eq = field.indexOf('=');
    return [field.slice(0, eq).trim(), field.slice(eq + 1).trim()] as const;
  }));
  const [secretId, date, service, terminator, ...rest] = (fields.get('Credential') ?? '').split('/');
  const signedHeaders = (fields.get('SignedHeaders') ?? '').split(';').filter(Boolean);
  const signature = fields.get('Signature') ?? '';
  if (!secretId || !date || !service || terminator !== 'tc3_request' || rest.length > 0 || signedHeaders.length === 0 || !signature) {
    throw invalid();
  }
  return { secretId, date, service, signedHeaders, signature };
}

/** Lowercased and trimmed; host without its port, as the SDK (and the API) sign it. */
function canonicalHeaderValue(req: http.IncomingMessage, name: string): string {
  const value = (headerValue(req, name) ?? '').trim().toLowerCase();
  return name === 'host' ? value.replace(/:\d+$/, '') : value;
}

function parseParams(action: RemoveUserAction, body: Buffer): RemoveUserCall['params'] {
  let params: unknown;
  try {
    params = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ApiError('InvalidParameter', 'The request body is not valid JSON.');
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new ApiError('InvalidParameter', 'The request body must be a JSON object.');
  }
  const { SdkAppId, RoomId, UserIds, ...unknown } = params as Record<string, unknown>;
  const extra = Object.keys(unknown)[0];
  if (extra !== undefined) throw new ApiError('UnknownParameter', `The parameter \`${extra}\` is not recognized.`);
  if (typeof SdkAppId !== 'number' || !Number.isInteger(SdkAppId) || SdkAppId <= 0) {
    throw new ApiError('InvalidParameter', 'SdkAppId must be a positive integer.');
  }
  const roomIdValid = action === 'RemoveUser'
    ? typeof RoomId === 'number' && Number.isInteger(RoomId) && RoomId > 0
    : typeof RoomId === 'string' && RoomId !== '';
  if (!roomIdValid) {
    throw new ApiError('InvalidParameter', `RoomId must be ${action === 'RemoveUser' ? 'a positive integer' : 'a non-empty string'} for ${action}.`);
  }
  if (!Array.isArray(UserIds) || UserIds.length === 0 || UserIds.length > MAX_USER_IDS
    || UserIds.some((id) => typeof id !== 'string' || id === '')) {
    throw new ApiError('InvalidParameter', `UserIds must be 1 to ${MAX_USER_IDS} non-empty strings.`);
  }
  return { SdkAppId, RoomId: RoomId as number | string, UserIds: UserIds as string[] };
}

function utcDate(timestampSeconds: number): string {
  return new Date(timestampSeconds * 1000).toISOString().slice(0, 10);
}

function sha256Hex(data: crypto.BinaryLike): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}
