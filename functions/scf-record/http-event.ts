import { ValidationError } from '../../shared/errors';
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
  headers?: Record<string, string>;
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

function isHttpEvent(event: unknown): event is HttpLikeEvent {
  if (typeof event !== 'object' || event === null) return false;
  const e = event as HttpLikeEvent;
  return 'body' in e && (e.httpMethod !== undefined || e.requestContext !== undefined || e.headers !== undefined);
}

export function httpResponse(statusCode: number, payload: unknown) {
  return { isBase64Encoded: false, statusCode, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify(payload) };
}
