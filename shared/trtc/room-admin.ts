/**
 * Removes users from a TRTC room through TencentCloud API 3.0 (RemoveUser, or
 * RemoveUserByStrRoomId for a string room id): how the Stop action ends a recording, by kicking
 * the recorder's own user out of the room.
 *
 * Only the trtc v20190722 client of tencentcloud-sdk-nodejs is loaded, and only when a client is
 * created: the package root loads all of the SDK's services, about 275 ms of cold start.
 */
import * as dns from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupFunction } from 'node:net';
import type SdkException from 'tencentcloud-sdk-nodejs/tencentcloud/common/exception/tencent_cloud_sdk_exception';
import type * as TrtcClientModule from 'tencentcloud-sdk-nodejs/tencentcloud/services/trtc/v20190722/trtc_client';
import { parseEndpointOverride } from '../endpoint-override';
import { isRetryable, MediaError, RoomAdminError, ValidationError, type FieldIssue } from '../errors';
import { withRetry, type RetryPolicy } from '../retry';

export interface TrtcCredentials {
  secretId: string;
  secretKey: string;
  /** With temporary keys (the SCF function role): sent as X-TC-Token. */
  sessionToken?: string;
}

export interface RoomAdminOptions {
  credentials: TrtcCredentials;
  /** TencentCloud API region; TRTC's room calls accept ap-beijing, ap-guangzhou and ap-singapore. */
  region: string;
  /** An override such as `http://127.0.0.1:9003` (TRTC_API_ENDPOINT); see resolveTrtcEndpoint. */
  endpoint?: string;
  retry?: Partial<RetryPolicy>;
}

export interface RemoveUserRequest {
  sdkAppId: number;
  /** The numeric room id; wins over strRoomId when both are given. */
  roomId?: number;
  strRoomId?: string;
  /** 1 to 10 user ids, the API's limit per call. */
  userIds: string[];
}

export type RemoveUserAction = 'RemoveUser' | 'RemoveUserByStrRoomId';

export interface RemoveUserResult {
  action: RemoveUserAction;
  requestId: string;
  attempts: number;
}

export interface RoomAdmin {
  removeUser(request: RemoveUserRequest): Promise<RemoveUserResult>;
}

/** Where the SDK sends requests: its `endpoint` and `protocol`, and the host to connect to instead. */
export interface TrtcEndpoint {
  /** `host[:port]`; its first label is the service name the SDK signs with. */
  endpoint: string;
  protocol: 'http://' | 'https://';
  /** When set, connections go to this host while the SDK keeps signing for `endpoint`. */
  connectHost?: string;
}

export const TRTC_API_HOST = 'trtc.tencentcloudapi.com';
/** The SDK's reqTimeout, in seconds (its default is 60); one Stop request must not hang the function. */
const REQUEST_TIMEOUT_SECONDS = 10;
/** RemoveUser is idempotent, so every attempt is safe; three keep a Stop request within ~35 s. */
const ROOM_ADMIN_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 500, maxDelayMs: 2_000, maxElapsedMs: 30_000 };
const MAX_USER_IDS = 10;
const MAX_ROOM_ID = 4_294_967_295;
/** TencentCloud codes for a failure of the service or a rate limit, where a later attempt can succeed. */
const RETRYABLE_CLOUD_CODE = /^(InternalError|RequestLimitExceeded)(\.|$)/;

/**
 * The SDK signs with the first label of its endpoint as the service name, so `127.0.0.1:9003`
 * would sign as service `127`. An override whose host is not `trtc.…` therefore keeps the real
 * API host (and the override's port) as the endpoint, and names the override's host as the one to
 * connect to. An override such as `https://trtc.intl.tencentcloudapi.com` is used as it is.
 */
export function resolveTrtcEndpoint(override?: string): TrtcEndpoint {
  if (override === undefined) return { endpoint: TRTC_API_HOST, protocol: 'https://' };
  const url = parseEndpointOverride(override, 'TRTC API endpoint');
  const protocol = url.protocol === 'https:' ? 'https://' : 'http://';
  if (url.hostname.startsWith('trtc.')) return { endpoint: url.host, protocol };
  return {
    endpoint: url.port ? `${TRTC_API_HOST}:${url.port}` : TRTC_API_HOST,
    protocol,
    connectHost: url.hostname.replace(/^\[(.*)\]$/, '$1'),
  };
}

export function createRoomAdmin(options: RoomAdminOptions): RoomAdmin {
  const { secretId, secretKey, sessionToken } = options.credentials;
  if (!secretId || !secretKey) throw new MediaError('InvalidConfig', 'TRTC API credentials need both a SecretId and a SecretKey');
  if (!options.region) throw new MediaError('InvalidConfig', 'TRTC API region is required, e.g. ap-guangzhou');
  const target = resolveTrtcEndpoint(options.endpoint);
  const { Client } = require('tencentcloud-sdk-nodejs/tencentcloud/services/trtc/v20190722/trtc_client') as typeof TrtcClientModule;
  // Already loaded by the client; needed to tell the API's answers from anything else thrown.
  const SdkHttpException = (require('tencentcloud-sdk-nodejs/tencentcloud/common/exception/tencent_cloud_sdk_exception') as {
    default: typeof SdkException;
  }).default;
  const client = new Client({
    credential: { secretId, secretKey, token: sessionToken },
    region: options.region,
    profile: {
      httpProfile: {
        endpoint: target.endpoint,
        protocol: target.protocol,
        reqTimeout: REQUEST_TIMEOUT_SECONDS,
        agent: createAgent(target),
      },
    },
  });
  const policy = { ...ROOM_ADMIN_RETRY, ...options.retry };

  return {
    async removeUser(request) {
      checkRequest(request);
      const { sdkAppId: SdkAppId, roomId, strRoomId, userIds: UserIds } = request;
      const action: RemoveUserAction = roomId !== undefined ? 'RemoveUser' : 'RemoveUserByStrRoomId';
      const { value, attempts } = await withRetry(async () => {
        try {
          return roomId !== undefined
            ? await client.RemoveUser({ SdkAppId, RoomId: roomId, UserIds })
            : await client.RemoveUserByStrRoomId({ SdkAppId, RoomId: strRoomId as string, UserIds });
        } catch (error) {
          throw describeFailure(action, error, SdkHttpException);
        }
      }, { policy });
      return { action, requestId: value.RequestId ?? '', attempts };
    },
  };
}

/**
 * Always an explicit agent. Without one the SDK builds a proxy agent from `http_proxy`, read from
 * the environment behind the config's back and applied even to hosts listed in NO_PROXY (which
 * it ignores), so a proxy meant for something else would capture these calls. SCF reaches the
 * API directly; should a proxy ever be needed, it belongs in the config as an explicit agent.
 */
function createAgent(target: TrtcEndpoint): http.Agent {
  const { connectHost } = target;
  // Resolves the connect host whatever name the SDK asks for; dns.lookup returns an IP as it is
  // and honours `all`, which Node's connection racing (autoSelectFamily) asks for.
  const lookup: LookupFunction | undefined = connectHost === undefined
    ? undefined
    : (_hostname, lookupOptions, callback) => dns.lookup(connectHost, lookupOptions, callback);
  const agentOptions = { keepAlive: true, ...(lookup ? { lookup } : {}) };
  return target.protocol === 'https://' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
}

function checkRequest(request: RemoveUserRequest): void {
  const issues: FieldIssue[] = [];
  if (!Number.isSafeInteger(request.sdkAppId) || request.sdkAppId <= 0) {
    issues.push({ field: 'sdkAppId', message: 'must be a positive integer' });
  }
  if (request.roomId !== undefined) {
    if (!Number.isInteger(request.roomId) || request.roomId <= 0 || request.roomId > MAX_ROOM_ID) {
      issues.push({ field: 'roomId', message: `must be an integer from 1 to ${MAX_ROOM_ID}` });
    }
  } else if (typeof request.strRoomId !== 'string' || request.strRoomId === '') {
    issues.push({ field: 'roomId', message: 'roomId or strRoomId is required' });
  }
  const { userIds } = request;
  if (!Array.isArray(userIds) || userIds.length === 0 || userIds.length > MAX_USER_IDS) {
    issues.push({ field: 'userIds', message: `must list 1 to ${MAX_USER_IDS} user ids` });
  } else if (userIds.some((id) => typeof id !== 'string' || id === '')) {
    issues.push({ field: 'userIds', message: 'must be non-empty strings' });
  }
  if (issues.length > 0) throw new ValidationError(issues);
}

/**
 * The SDK throws its HTTP exception with `code` for an API error answer and `httpCode` for a
 * status other than 200; with neither, no answer came back (it wraps network errors and timeouts
 * keeping only their message). Anything else is an answer it could not read. As RemoveUser is
 * idempotent, all but API errors and 4xx statuses are worth another attempt.
 */
function describeFailure(action: RemoveUserAction, error: unknown, SdkHttpException: typeof SdkException): RoomAdminError {
  const reason = error instanceof Error ? error.message : String(error);
  if (!(error instanceof SdkHttpException)) {
    return new RoomAdminError({ action }, `TRTC ${action} failed: unreadable answer: ${reason}`, { cause: error, retryable: true });
  }
  const requestId = error.requestId || undefined;
  if (error.code) {
    const suffix = requestId ? ` (RequestId ${requestId})` : '';
    return new RoomAdminError({ action, cloudCode: error.code, requestId }, `TRTC ${action} failed: ${error.code}: ${reason}${suffix}`, {
      cause: error,
      retryable: RETRYABLE_CLOUD_CODE.test(error.code),
    });
  }
  if (error.httpCode !== undefined) {
    return new RoomAdminError({ action, status: error.httpCode }, `TRTC ${action} failed: HTTP ${error.httpCode} ${reason}`, {
      cause: error,
      retryable: isRetryable({ status: error.httpCode }),
    });
  }
  return new RoomAdminError({ action }, `TRTC ${action} failed: no answer: ${reason}`, { cause: error, retryable: true });
}
