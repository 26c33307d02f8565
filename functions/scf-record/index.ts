import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { readConfig, type Env, type RuntimeConfig } from '../../shared/config';
import { ConfigurationError, MediaError, ValidationError } from '../../shared/errors';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { stopMarginMs, withTerminationSignal } from '../../shared/invocation';
import { createLogger, type Logger } from '../../shared/log';
import { redact } from '../../shared/redact';
import { runRecordJob, type RecordResult } from '../../shared/recording/record-job';
import { RECORDING_AUDIO } from '../../shared/outputs/recording/encoder-args';
import { createLiteavRoom } from '../../shared/sources/liteav/liteav-room';
import type { RoomContext, RoomSource } from '../../shared/sources/room-source';
import { createTrtcElectronRoom } from '../../shared/sources/trtc-electron-room';
import { createCosStore, resolveCosCredentials } from '../../shared/storage/cos';
import type { ObjectStore } from '../../shared/storage/types';
import { createRoomAdmin, type RoomAdmin, type TrtcCredentials } from '../../shared/trtc/room-admin';
import { parseRequest, roomOf, toRecordJob, type RecordRequest, type StopRequest } from './event';
import { authorizeControl, ControlAuthError, httpHeaders, httpResponse, unwrapEvent } from './http-event';

/** The parts of SCF's context this function uses. */
export interface ScfContext {
  request_id?: string;
  time_limit_in_ms?: number;
  getRemainingTimeInMillis?: () => number;
  /**
   * This invocation's TencentCloud keys, in place of the TENCENTCLOUD_* environment: the image
   * server fills them from SCF's X-Scf-Secret-Id / X-Scf-Secret-Key / X-Scf-Session-Token headers.
   * Used for COS when CosConfig has no keys, and for RemoveUser.
   */
  tencentCredentials?: TrtcCredentials;
}

export interface RecordHandlerDependencies {
  env?: Env;
  /** Replaces the production room (TRTC_ROOM_SDK), e.g. with the room simulator. */
  createRoom?: (context: RoomContext) => RoomSource;
  /** Replaces COS, e.g. with the local driver. */
  createStore?: (target: { bucket: string; region: string }) => ObjectStore;
  terminationSignals?: NodeJS.Signals[];
}

export interface FailedRequest {
  RequestId: string;
  Error: { Code: string; Message: string; Fields?: Array<{ field: string; message: string }> };
}

export interface StopResult {
  RequestId: string;
  Action: 'Stop';
  SdkAppId: number;
  RoomId: number | null;
  StrRoomId: string | null;
  UserId: string;
  TrtcRequestId: string;
}

export type RecordHandlerResult = RecordResult | StopResult | FailedRequest;

/**
 * Builds the SCF handler: turns an API gateway, function-URL or console event into a
 * record or stop request, runs it, and answers in the shape the trigger expects.
 */
export function createRecordHandler(deps: RecordHandlerDependencies = {}) {
  return async function recordHandler(event: unknown, context: ScfContext = {}): Promise<unknown> {
    const invokedAt = Date.now();
    const requestId = context.request_id ?? randomUUID();
    let viaHttp = typeof event === 'object' && event !== null && 'body' in event;
    let logger = createLogger({ requestId, level: 'info', fields: { fn: 'scf-record' } });
    try {
      const config = withInvocationCredentials(readConfig(deps.env ?? process.env), context);
      logger = createLogger({ requestId, level: config.logLevel, fields: { fn: 'scf-record' } });
      const incoming = unwrapEvent(event);
      viaHttp = incoming.viaHttp;
      const parsed = parseRequest(incoming.body);
      // Over HTTP, anyone who knows the URL could stop any recording: Stop needs the deployment's secret.
      if (viaHttp && parsed.action === 'stop') authorizeControl(httpHeaders(event), config.controlSecret);
      const result =
        parsed.action === 'stop'
          ? await stopRecording(parsed.request, requestId, config, logger)
          : await record(parsed.request, requestId, config, logger, deps, remainingDeadline(context, invokedAt));
      return viaHttp ? httpResponse(200, result) : result;
    } catch (error) {
      const { status, body, headers } = failure(requestId, error);
      logger[status < 500 ? 'warn' : 'error']('request failed', { status, error: body.Error });
      return viaHttp ? httpResponse(status, body, headers) : body;
    }
  };
}

async function record(
  request: RecordRequest,
  requestId: string,
  config: RuntimeConfig,
  logger: Logger,
  deps: RecordHandlerDependencies,
  deadlineAt: number | undefined,
): Promise<RecordResult> {
  const job = toRecordJob(request, requestId);
  const storeFor = (target: { bucket: string; region: string }) =>
    deps.createStore ? deps.createStore(target) : createCosStoreFor(target, request, config);
  const store = storeFor(job);
  return withTerminationSignal(deps.terminationSignals ?? ['SIGTERM'], logger, async (signal) => {
    logger.info('recording starting', { request: redact(request) });
    const result = await runRecordJob(job, {
      openRoom: deps.createRoom ?? productionRoom(config),
      store,
      storeFor,
      ffmpegPath: resolveFfmpegPath(config.ffmpegPath),
      logger,
      workRoot: config.workRoot,
      deadlineAt,
      finalizeMarginMs: stopMarginMs(deadlineAt === undefined ? undefined : deadlineAt - Date.now(), config.record.finalizeMarginMs),
      signal,
      callbackSecret: config.callbackSecret,
      spillLimitBytes: config.spillLimitBytes,
    });
    logger.info('recording finished', { stopReason: result.StopReason, files: result.Files, callback: result.Callback, error: result.Error });
    return result;
  });
}

async function stopRecording(request: StopRequest, requestId: string, config: RuntimeConfig, logger: Logger): Promise<StopResult> {
  if (!config.tencentCredentials) {
    throw new ConfigurationError(
      'MissingCredentials',
      'this function has no TencentCloud credentials to call TRTC RemoveUser, so it cannot stop a recording: the operator must give it ' +
        'an execution role allowed trtc:RemoveUser and trtc:RemoveUserByStrRoomId, or set TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY',
    );
  }
  const admin: RoomAdmin = createRoomAdmin({ credentials: config.tencentCredentials, region: config.trtcRegion, endpoint: config.trtcApiEndpoint });
  const removed = await admin.removeUser({ sdkAppId: request.SdkAppId, ...roomOf(request), userIds: [request.UserId] });
  logger.info('recorder removed from the room', { action: removed.action, trtcRequestId: removed.requestId });
  return {
    RequestId: requestId,
    Action: 'Stop',
    SdkAppId: request.SdkAppId,
    RoomId: request.RoomId ?? null,
    StrRoomId: request.StrRoomId ?? null,
    UserId: request.UserId,
    TrtcRequestId: removed.requestId,
  };
}

/**
 * CosConfig's keys first, then the function role's TENCENTCLOUD_* keys. Another bucket (a killed
 * recording's, finished by this invocation) is reached with the role's keys only.
 */
function createCosStoreFor(target: { bucket: string; region: string }, request: RecordRequest, config: RuntimeConfig): ObjectStore {
  const ownBucket = target.bucket === request.CosConfig.Bucket;
  const credentials = resolveCosCredentials(ownBucket ? request.CosConfig : undefined, config.tencentCredentials);
  if (!credentials) {
    throw new MediaError('MissingCredentials', 'no COS credentials: give CosConfig.SecretId/SecretKey, or a function role (TENCENTCLOUD_* env)');
  }
  return createCosStore({ bucket: target.bucket, region: target.region, endpoint: config.cosEndpoint, credentials });
}

/**
 * The room TRTC_ROOM_SDK names: liteav in its room process (the default on Linux), or
 * trtc-electron-sdk (an Electron host on Windows or macOS).
 */
function productionRoom(config: RuntimeConfig): (context: RoomContext) => RoomSource {
  if (config.trtcRoomSdkUnknown !== undefined) {
    const unknown = config.trtcRoomSdkUnknown;
    return () => {
      throw new MediaError('TrtcSdkUnavailable', `TRTC_ROOM_SDK=${unknown} names no room SDK: use liteav or electron`);
    };
  }
  if (config.trtcRoomSdk === 'electron') return () => createTrtcElectronRoom();
  const python = liteavPython(config);
  return (context) => createLiteavRoom({ python, workDir: context.workDir, env: context.env, audio: RECORDING_AUDIO, logger: context.logger });
}

/**
 * The Python for the liteav room process: TRTC_LITEAV_PYTHON, else the `.venv/` `npm ci` installs
 * liteav into (the project root is two levels above this file both in source, functions/scf-record/,
 * and built, dist/scf-record/), else `python3` on PATH.
 */
export function liteavPython(config: RuntimeConfig): string {
  if (config.liteavPython) return config.liteavPython;
  const venvPython = resolve(__dirname, '..', '..', '.venv', 'bin', 'python');
  return existsSync(venvPython) ? venvPython : 'python3';
}

/** SubscribeUserIds / UnSubscribeUserIds → whom to record (at most one of them is given). */
/** The invocation's own keys (image functions get them per request) replace the environment's. */
function withInvocationCredentials(config: RuntimeConfig, context: ScfContext): RuntimeConfig {
  const given = context.tencentCredentials;
  return given?.secretId && given.secretKey ? { ...config, tencentCredentials: { ...given } } : config;
}

function remainingDeadline(context: ScfContext, invokedAt: number): number | undefined {
  if (context.getRemainingTimeInMillis) return Date.now() + context.getRemainingTimeInMillis();
  return context.time_limit_in_ms ? invokedAt + context.time_limit_in_ms : undefined;
}

function failure(requestId: string, error: unknown): { status: number; body: FailedRequest; headers?: Record<string, string> } {
  if (error instanceof ControlAuthError) {
    return {
      status: error.status,
      body: { RequestId: requestId, Error: { Code: error.code, Message: error.message } },
      headers: error.challenge ? { 'WWW-Authenticate': error.challenge } : undefined,
    };
  }
  if (error instanceof ValidationError) {
    return { status: 400, body: { RequestId: requestId, Error: { Code: error.code, Message: error.message, Fields: error.issues } } };
  }
  const code = error instanceof MediaError ? error.code : 'InternalError';
  const message = error instanceof Error ? error.message : String(error);
  // A deployment that is not set up is the server's fault, whatever the request.
  const callersMistake = error instanceof MediaError && !error.retryable && !(error instanceof ConfigurationError);
  return { status: callersMistake ? 400 : 500, body: redact({ RequestId: requestId, Error: { Code: code, Message: message } }) };
}

/** The name serverless.yml's handler points at: index.main_handler. */
export const main_handler = createRecordHandler();
