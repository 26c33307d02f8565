/**
 * The single place secrets are scrubbed. Every log line, error message and result
 * that could echo user input passes through here.
 */
const SECRET_KEY_PATTERN = /(secret|password|passwd|pwd|token|usersig|signature|authorization|credential|sts)/i;
/** Query parameters that carry stream or storage auth (auth_key on Alibaba live, txSecret on Tencent, …). */
const SECRET_QUERY_PATTERN = /(secret|token|sign|sig|auth|key|pass|pwd|credential)/i;
export const REDACTED = '***';

/** Masks userinfo (`rtmp://user:pass@host`) and secret-looking query values in any URL-like text. */
export function redactUrls(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, `$1${REDACTED}@`)
    .replace(/([?&])([^=&#\s]+)=([^&#\s]*)/g, (whole, sep: string, name: string) =>
      SECRET_QUERY_PATTERN.test(name) ? `${sep}${name}=${REDACTED}` : whole,
    );
}

/** Deep copy with secret-named fields masked and URLs scrubbed; safe to log or return. */
export function redact<T>(value: T): T {
  return redactValue(value, new WeakSet()) as T;
}

function redactValue(value: unknown, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactUrls(value);
  if (value instanceof Error) return redactValue(describeError(value), seen);
  if (value === null || typeof value !== 'object') return value;
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => redactValue(item, seen));
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    copy[key] = SECRET_KEY_PATTERN.test(key) && item !== undefined && item !== null && item !== '' ? REDACTED : redactValue(item, seen);
  }
  return copy;
}

function describeError(error: Error): Record<string, unknown> {
  const fields: Record<string, unknown> = { name: error.name, message: error.message };
  for (const key of ['code', 'status', 'statusCode', 'requestId', 'retryable', 'detail', 'attempts'] as const) {
    const item = (error as unknown as Record<string, unknown>)[key];
    if (item !== undefined) fields[key] = item;
  }
  if (error.cause !== undefined) fields.cause = error.cause;
  return fields;
}
