import { readConfig, type Env, type RuntimeConfig } from '../../shared/config';
import { MediaError, ValidationError } from '../../shared/errors';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { stopMarginMs, withTerminationSignal } from '../../shared/invocation';
import { createLogger } from '../../shared/log';
import { redact } from '../../shared/redact';
import { runSnapshotJob, type SnapshotJob, type SnapshotResult, type SnapshotRuntime } from '../../shared/snapshot/job';
import type { ObjectStore } from '../../shared/storage/types';
import { createOssStore, ossEndpoint } from '../../shared/storage/oss';
import { toSnapshotJob } from './event';

/** The parts of FC's context this function uses. */
export interface FcContext {
  requestId: string;
  credentials?: { accessKeyId?: string; accessKeySecret?: string; securityToken?: string };
  function?: { name?: string; timeout?: number };
  region?: string;
}

export interface FailedInvocation {
  request_id: string;
  status: 'invalid' | 'error';
  error: { code: string; message: string; fields?: Array<{ field: string; message: string }> };
}

export type SnapshotHandlerResult = SnapshotResult | FailedInvocation;

export interface HandlerDependencies {
  env?: Env;
  /** Replaces OSS, e.g. with the local driver for local runs. */
  createStore?: (target: { bucket: string; region: string }) => ObjectStore;
  onProgress?: SnapshotRuntime['onProgress'];
  /** Signals that mean "the platform is shutting us down": stop, flush, report. */
  terminationSignals?: NodeJS.Signals[];
  now?: () => number;
}

/**
 * Builds the FC handler. The exported `handler` uses the real environment and OSS;
 * local runs inject a different store.
 */
export function createSnapshotHandler(deps: HandlerDependencies = {}) {
  return async function snapshotHandler(event: unknown, context: FcContext): Promise<SnapshotHandlerResult> {
    const invokedAt = (deps.now ?? Date.now)();
    const requestId = context.requestId;
    let config: RuntimeConfig;
    try {
      config = readConfig(deps.env ?? process.env);
    } catch (error) {
      const result = failure(requestId, error);
      createLogger({ requestId, level: 'info', fields: { fn: 'fc-snapshot' } }).error('the function is misconfigured', { error: result.error });
      return result;
    }
    const logger = createLogger({ requestId, level: config.logLevel, fields: { fn: 'fc-snapshot' } });

    let job: SnapshotJob;
    try {
      job = toSnapshotJob(event, requestId, config.functionRegion ?? context.region);
    } catch (error) {
      // Returned, not thrown: FC's async retry must not re-run a hopeless request.
      const result = failure(requestId, error);
      logger.warn('invalid event', { error: result.error });
      return result;
    }

    return withTerminationSignal(deps.terminationSignals ?? ['SIGTERM'], logger, async (signal) => {
      try {
        const storeFor = (target: { bucket: string; region: string }) =>
          deps.createStore ? deps.createStore(target) : createOssStoreFor(target, context, config);
        const store = storeFor(job);
        const timeoutMs = (context.function?.timeout ?? 0) * 1000;
        logger.info('snapshot job starting', { job });
        const result = await runSnapshotJob(job, {
          store,
          storeFor,
          ffmpegPath: resolveFfmpegPath(config.ffmpegPath),
          logger,
          workRoot: config.workRoot,
          deadlineAt: timeoutMs > 0 ? invokedAt + timeoutMs : undefined,
          finalizeMarginMs: stopMarginMs(timeoutMs, config.snapshot.finalizeMarginMs),
          signal,
          callbackSecret: config.callbackSecret,
          spillLimitBytes: config.spillLimitBytes,
          uploadConcurrency: config.snapshot.uploadConcurrency,
          onProgress: deps.onProgress,
        });
        logger.info('snapshot job finished', { status: result.status, stop_reason: result.stop_reason, counts: result.counts, callback: result.callback });
        return result;
      } catch (error) {
        const result = failure(requestId, error);
        logger.error('snapshot job failed', { error });
        return result;
      }
    });
  };
}

/** FC's own STS credentials first, then the ALIBABA_CLOUD_* env. */
function createOssStoreFor(target: { bucket: string; region: string }, context: FcContext, config: RuntimeConfig): ObjectStore {
  const fromContext = context.credentials;
  const credentials =
    fromContext?.accessKeyId && fromContext.accessKeySecret
      ? { accessKeyId: fromContext.accessKeyId, accessKeySecret: fromContext.accessKeySecret, securityToken: fromContext.securityToken }
      : config.alibabaCredentials;
  if (!credentials) {
    throw new MediaError('MissingCredentials', 'no OSS credentials: give the function a role, or set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET');
  }
  return createOssStore({
    bucket: target.bucket,
    region: target.region,
    endpoint: ossEndpoint(target.region, config.functionRegion, config.ossEndpoint),
    credentials,
  });
}

function failure(requestId: string, error: unknown): FailedInvocation {
  if (error instanceof ValidationError) {
    return { request_id: requestId, status: 'invalid', error: { code: error.code, message: error.message, fields: error.issues } };
  }
  const code = error instanceof MediaError ? error.code : 'InternalError';
  const message = error instanceof Error ? error.message : String(error);
  return redact({ request_id: requestId, status: 'error', error: { code, message } });
}

export const handler = createSnapshotHandler();
