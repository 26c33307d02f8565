/** Every code a user can see in a result, a callback or an HTTP answer. */
export type ErrorCode =
  // The request or the deployment
  | 'InvalidInput'
  | 'InvalidConfig'
  | 'MissingCredentials'
  | 'Unauthorized'
  | 'HttpStopDisabled'
  // The source
  | 'SourceUnavailable'
  | 'ForbiddenSource'
  | 'MediaFormatError'
  | 'ImagerFailed'
  | 'NothingCaptured'
  // The TRTC room
  | 'RoomEnterFailed'
  | 'TrtcSdkUnavailable'
  | 'RoomAdminError'
  | 'RecordingFailed'
  // Storage and delivery
  | 'StorageError'
  | 'AppendLimit'
  | 'CallbackError'
  | 'InternalError';

/** An outcome as results carry it: never a bare string. */
export interface ErrorOutcome {
  code: ErrorCode;
  message: string;
}

/**
 * One base class for every error the core raises on purpose. `retryable` tells the
 * retry policy and the edge whether trying again could help; `code` is what users see.
 */
export class MediaError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** Any thrown value as an outcome: a MediaError keeps its code, anything else gets `fallback`. */
export function outcomeOf(error: unknown, fallback: ErrorCode = 'InternalError'): ErrorOutcome {
  return { code: error instanceof MediaError ? error.code : fallback, message: error instanceof Error ? error.message : String(error) };
}

/** Bytes that are not the format they claim (FLV, MP4, MP3, RTMP chunks, AMF). */
export class MediaFormatError extends MediaError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('MediaFormatError', message, options);
  }
}

/**
 * The deployment is not set up for the request (no role, no keys, a missing setting): for the
 * operator to fix, not the caller. An HTTP edge answers it 500, never 4xx.
 */
export class ConfigurationError extends MediaError {}

export interface FieldIssue {
  field: string;
  message: string;
}

/** The request itself is wrong; retrying the same request can never succeed. */
export class ValidationError extends MediaError {
  readonly issues: FieldIssue[];

  constructor(issues: FieldIssue[]) {
    super('InvalidInput', issues.map((i) => `${i.field}: ${i.message}`).join('; '));
    this.issues = issues;
  }
}

export interface StorageFailure {
  cloud: string;
  bucket: string;
  key: string;
  /** e.g. `put`, `upload part 3`, `complete multipart upload`. */
  operation?: string;
  status?: number;
  cloudCode?: string;
  requestId?: string;
  /** With PositionNotEqualToLength: the object's current length, where the next append must start. */
  nextPosition?: number;
}

/** A put/get against object storage failed; `retryable` follows the HTTP status. */
export class StorageError extends MediaError {
  readonly detail: StorageFailure;

  constructor(detail: StorageFailure, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super('StorageError', message, options);
    this.detail = detail;
  }
}

export interface RoomAdminFailure {
  /** The TencentCloud API action, e.g. `RemoveUser`. */
  action: string;
  /** TencentCloud's error code, e.g. `AuthFailure.SignatureFailure`; absent when no API answer came back. */
  cloudCode?: string;
  requestId?: string;
  /** Set when the API gateway answered with an HTTP status other than 200. */
  status?: number;
}

/** A TRTC room-management call (removing a user) failed; `retryable` follows the failure kind. */
export class RoomAdminError extends MediaError {
  readonly detail: RoomAdminFailure;

  constructor(detail: RoomAdminFailure, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super('RoomAdminError', message, options);
    this.detail = detail;
  }
}

export class CallbackError extends MediaError {
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super('CallbackError', message, options);
  }
}

/** Network-level failures any HTTP client may surface; all worth another attempt. */
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EPIPE',
  'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET',
  'ConnectionTimeoutError', 'ResponseTimeoutError', 'RequestError', 'ResponseError',
]);

/** Whether an arbitrary thrown value (SDK error, fetch error, our own) is worth retrying. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof MediaError) return error.retryable;
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { status?: unknown; statusCode?: unknown; code?: unknown; name?: unknown; cause?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  if (status !== undefined && status > 0) return status >= 500 || status === 429 || status === 408;
  if (typeof e.code === 'string' && TRANSIENT_NETWORK_CODES.has(e.code)) return true;
  if (typeof e.name === 'string' && (TRANSIENT_NETWORK_CODES.has(e.name) || e.name === 'TimeoutError')) return true;
  return e.cause !== undefined && e.cause !== error ? isRetryable(e.cause) : false;
}
