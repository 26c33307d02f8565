import { createHash, timingSafeEqual } from 'node:crypto';
import { MediaError, ValidationError, type ErrorCode } from '../../shared/errors';
import { decodeJsonEvent } from '../../shared/validation';

/**
 * The three shapes SCF hands this function: an API gateway event and a function-URL /
 * HTTP-trigger event (both carry the request in `body`, maybe base64), or the request
 * itself from a console test event.
 */
export interface IncomingRequest {
  body: unknown;
  /** Whether the answer must be an HTTP response object. */
  viaHttp: boolean;
}

interface HttpLikeEvent {
  body?: unknown;
  isBase64Encoded?: boolean;
  httpMethod?: string;
  headers?: Record<string, unknown>;
  requestContext?: { httpMethod?: string; http?: { method?: string } };
}

export function unwrapEvent(event: unknown): IncomingRequest {
  const decoded = decodeJsonEvent(event);
  if (!isHttpEvent(decoded)) return { body: decoded, viaHttp: false };
  const method = (decoded.httpMethod ?? decoded.requestContext?.httpMethod ?? decoded.requestContext?.http?.method ?? 'POST').toUpperCase();
  if (method !== 'POST') throw new ValidationError([{ field: 'httpMethod', message: `must be POST (got ${method.slice(0, 10)})` }]);
  let body = decoded.body ?? '';
  if (typeof body === 'string' && decoded.isBase64Encoded) body = Buffer.from(body, 'base64').toString('utf8');
  if (body === '') throw new ValidationError([{ field: 'body', message: 'must be a JSON object (the request body is empty)' }]);
  return { body: decodeJsonEvent(body), viaHttp: true };
}

/**
 * The HTTP request's headers from an API gateway or function-URL event, names lowercased (they
 * arrive in lower or mixed case); empty for a direct invocation.
 */
export function httpHeaders(event: unknown): Record<string, string> {
  const decoded = decodeJsonEvent(event);
  return isHttpEvent(decoded) ? normalizeHeaders(decoded.headers) : {};
}

function isHttpEvent(event: unknown): event is HttpLikeEvent {
  if (typeof event !== 'object' || event === null) return false;
  const e = event as HttpLikeEvent;
  return 'body' in e && (e.httpMethod !== undefined || e.requestContext !== undefined || e.headers !== undefined);
}

/** Lowercased names; a repeated header (an array) is joined as HTTP folds it, so it never reads as one clean value. */
export function normalizeHeaders(raw: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  if (typeof raw !== 'object' || raw === null) return headers;
  for (const [name, value] of Object.entries(raw)) {
    const text = typeof value === 'string' ? value : Array.isArray(value) ? value.filter((v) => typeof v === 'string').join(', ') : undefined;
    if (text === undefined) continue;
    const key = name.toLowerCase();
    headers[key] = key in headers ? `${headers[key]}, ${text}` : text;
  }
  return headers;
}

export function httpResponse(statusCode: number, payload: unknown, extraHeaders: Record<string, string> = {}) {
  return {
    isBase64Encoded: false,
    statusCode,
    headers: { 'Content-Type': 'application/json; charset=utf-8', ...extraHeaders },
    body: JSON.stringify(payload),
  };
}

/*
 * Control over HTTP. A Stop that arrives through the API gateway or a function URL must carry the
 * deployment's CONTROL_SECRET as a bearer token. When the trigger's own authentication already
 * occupies `Authorization` (API gateway key-pair or app authentication, function URL CAM
 * authentication all sign requests there), the same `Bearer <secret>` goes in
 * `X-Control-Authorization` instead. Direct invocations (console test events, the Invoke API) are
 * authorised by the cloud's access control and are not checked here.
 */

/** Where a bearer control secret is looked for, in order. */
export const CONTROL_AUTH_HEADERS = ['authorization', 'x-control-authorization'] as const;
const BEARER_REALM = 'Bearer realm="scf-record"';
/** Shorter secrets are refused as configuration errors: `openssl rand -hex 32` makes a good one. */
export const MIN_CONTROL_SECRET_LENGTH = 16;

/** A control request refused: 401 (no or wrong bearer secret) or 403 (no usable CONTROL_SECRET configured). */
export class ControlAuthError extends MediaError {
  readonly status: 401 | 403;
  /** The WWW-Authenticate challenge to answer a 401 with. */
  readonly challenge?: string;

  constructor(status: 401 | 403, code: ErrorCode, message: string, challenge?: string) {
    super(code, message);
    this.status = status;
    this.challenge = challenge;
  }
}

/**
 * Throws ControlAuthError unless one of CONTROL_AUTH_HEADERS carries `Bearer <secret>`. The
 * comparison is over SHA-256 digests with timingSafeEqual: equal lengths whatever was sent, and
 * time that does not depend on where the bytes differ. Neither the header nor the secret is ever
 * put into the error.
 */
export function authorizeControl(headers: Record<string, string>, secret: string | undefined): void {
  const unusable = controlSecretProblem(secret);
  if (unusable !== undefined || secret === undefined) {
    throw new ControlAuthError(
      403,
      'HttpStopDisabled',
      `${unusable}, so Stop over HTTP is disabled: set CONTROL_SECRET on the function (at least ${MIN_CONTROL_SECRET_LENGTH} characters, ` +
        'sent as Authorization: Bearer <secret>), or send Stop as a direct invocation (console test event or the SCF Invoke API)',
    );
  }
  const presented = CONTROL_AUTH_HEADERS.map((name) => bearerToken(headers[name])).filter((token): token is string => token !== undefined);
  if (presented.length === 0) {
    throw new ControlAuthError(
      401,
      'Unauthorized',
      'Stop over HTTP needs the header Authorization: Bearer <CONTROL_SECRET> (or X-Control-Authorization: Bearer <CONTROL_SECRET> ' +
        "when the trigger's own authentication uses Authorization)",
      BEARER_REALM,
    );
  }
  let matched = false;
  // Every candidate is compared, so the time taken does not say which header matched.
  for (const token of presented) matched = secretsMatch(token, secret) || matched;
  if (!matched) {
    throw new ControlAuthError(401, 'Unauthorized', "the bearer token is not this deployment's CONTROL_SECRET", `${BEARER_REALM}, error="invalid_token"`);
  }
}

/**
 * Why a configured secret cannot be used, if it cannot. Fails closed on a value a deployment tool
 * left unresolved (`${env:CONTROL_SECRET}` is public knowledge) and on one too short to resist guessing.
 */
function controlSecretProblem(secret: string | undefined): string | undefined {
  if (secret === undefined) return 'this deployment has no CONTROL_SECRET';
  if (/^\$\{.*\}$/.test(secret)) return 'CONTROL_SECRET is an unresolved variable reference, not a secret';
  if (secret.length < MIN_CONTROL_SECRET_LENGTH) return `CONTROL_SECRET is shorter than ${MIN_CONTROL_SECRET_LENGTH} characters`;
  return undefined;
}

/** `Bearer <token>`, scheme case-insensitive (RFC 9110), token trimmed as CONTROL_SECRET is. */
function bearerToken(value: string | undefined): string | undefined {
  const match = value === undefined ? null : /^bearer[ \t]+(.+)$/i.exec(value.trim());
  const token = match?.[1]?.trim();
  return token ? token : undefined;
}

/** Constant-time equality of two secrets of any lengths: compares their SHA-256 digests. */
export function secretsMatch(presented: string, secret: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(secret));
}
