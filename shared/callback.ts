import { createHmac } from 'node:crypto';
import { CallbackError, MediaError } from './errors';
import { guardedLookup, isMetadataAddress } from './network-guard';
import { redactUrls } from './redact';
import { withRetry } from './retry';

/** Why a callback URL is refused, or null. Checked at validation and again on every resolved address. */
export function callbackUrlProblem(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be a valid http(s) URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http(s) URL';
  if (url.username || url.password) return 'must not contain credentials; use CALLBACK_SECRET signatures instead';
  if (isMetadataAddress(url.hostname)) return 'must not point at a cloud metadata address';
  return null;
}

export const SIGNATURE_HEADER = 'x-media-signature';
/** A job's callback ends this long before the platform's kill, so the result is still returned. */
export const CALLBACK_DEADLINE_RESERVE_MS = 500;
/** Shorter than this, an attempt is not worth starting. */
const MIN_ATTEMPT_MS = 250;
export const TIMESTAMP_HEADER = 'x-media-timestamp';

/** hex HMAC-SHA256 over `${timestamp}.${body}`; the timestamp lets receivers refuse replays. */
export function signCallback(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export interface CallbackOptions {
  secret?: string;
  attempts?: number;
  timeoutMs?: number;
  baseDelayMs?: number;
  signal?: AbortSignal;
  /** Epoch ms by which every attempt must be over (the function's deadline, less a little). */
  deadlineAt?: number;
}

export interface CallbackOutcome {
  url: string;
  delivered: boolean;
  attempts: number;
  status?: number;
  error?: string;
}

/**
 * POSTs JSON with a per-attempt timeout and backoff. Never throws: a callback that
 * cannot be delivered is reported in the outcome, never at the cost of the job's data.
 */
export async function deliverCallback(rawUrl: string, payload: unknown, options: CallbackOptions = {}): Promise<CallbackOutcome> {
  const url = redactUrls(rawUrl);
  const problem = callbackUrlProblem(rawUrl);
  if (problem) return { url, delivered: false, attempts: 0, error: `callback ${problem}` };
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.secret) {
    const timestamp = String(Math.floor(Date.now() / 1000));
    headers[TIMESTAMP_HEADER] = timestamp;
    headers[SIGNATURE_HEADER] = `sha256=${signCallback(options.secret, timestamp, body)}`;
  }
  let lastStatus: number | undefined;
  const timeLeft = () => (options.deadlineAt === undefined ? Infinity : options.deadlineAt - Date.now());
  if (timeLeft() < MIN_ATTEMPT_MS) return { url, delivered: false, attempts: 0, error: 'no time left before the deadline to deliver the callback' };
  try {
    const { value, attempts } = await withRetry(
      async () => {
        // An attempt never runs past the deadline, whatever the receiver does.
        const status = await postOnce(rawUrl, body, headers, Math.min(options.timeoutMs ?? 5_000, Math.max(MIN_ATTEMPT_MS, timeLeft())));
        lastStatus = status;
        if (status < 200 || status >= 300) {
          throw new CallbackError(`callback answered HTTP ${status}`, { retryable: status >= 500 || status === 429 || status === 408 });
        }
        return status;
      },
      {
        policy: { maxAttempts: options.attempts ?? 3, baseDelayMs: options.baseDelayMs ?? 1_000, maxDelayMs: 4_000, maxElapsedMs: Math.min(60_000, timeLeft() - MIN_ATTEMPT_MS) },
        signal: options.signal,
        // Our own refusals (an HTTP status that won't change, a metadata address) say whether to retry.
        shouldRetry: (error) => (!(error instanceof MediaError) || error.retryable) && timeLeft() >= MIN_ATTEMPT_MS,
      },
    );
    return { url, delivered: true, attempts, status: value };
  } catch (error) {
    return {
      url,
      delivered: false,
      attempts: (error as { attempts?: number }).attempts ?? 1,
      status: lastStatus,
      error: redactUrls(error instanceof Error ? error.message : String(error)),
    };
  }
}

/** One POST through node:http(s), with a DNS lookup that refuses metadata addresses (no rebinding). */
async function postOnce(rawUrl: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
  const url = new URL(rawUrl);
  const transport = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise<number>((resolve, reject) => {
    const request = transport.request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        timeout: timeoutMs,
        lookup: guardedLookup,
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(Object.assign(new Error(`callback timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    request.on('error', reject);
    request.end(body);
  });
}
