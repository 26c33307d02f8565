import { isRetryable } from './errors';

export interface RetryPolicy {
  /** Total attempts, the first included. */
  maxAttempts: number;
  /** First backoff; each later one doubles, capped at maxDelayMs, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** No new attempt starts once this much time has passed since the first. */
  maxElapsedMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  maxElapsedMs: 60_000,
};

/** One request of an upload that rides out outages: short, because OUTAGE_RETRY goes on around it. */
export const STORAGE_REQUEST_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 1_000, maxElapsedMs: 5_000 };
/**
 * Between attempts while storage is down: no attempt limit; the caller's shouldRetry ends it at
 * its give-up time, and what waits meanwhile is spilled to disk.
 */
export const OUTAGE_RETRY: RetryPolicy = { maxAttempts: Number.POSITIVE_INFINITY, baseDelayMs: 500, maxDelayMs: 5_000, maxElapsedMs: Number.POSITIVE_INFINITY };

export interface RetryOptions {
  policy?: Partial<RetryPolicy>;
  signal?: AbortSignal;
  shouldRetry?: (error: unknown) => boolean;
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /** Injected for tests that need deterministic jitter. */
  random?: () => number;
}

export interface RetryOutcome<T> {
  value: T;
  attempts: number;
}

/** Thrown error keeps the last failure as its own (not wrapped) and gains `attempts`. */
export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<RetryOutcome<T>> {
  const policy = { ...DEFAULT_RETRY_POLICY, ...options.policy };
  const shouldRetry = options.shouldRetry ?? isRetryable;
  const random = options.random ?? Math.random;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await operation(attempt), attempts: attempt };
    } catch (error) {
      const delayMs = Math.round(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)));
      const outOfTime = Date.now() - started + delayMs >= policy.maxElapsedMs;
      if (attempt >= policy.maxAttempts || outOfTime || options.signal?.aborted || !shouldRetry(error)) {
        if (typeof error === 'object' && error !== null) Object.assign(error, { attempts: attempt });
        throw error;
      }
      options.onRetry?.({ attempt, delayMs, error });
      await sleep(delayMs, options.signal);
    }
  }
}

/** Resolves after ms, or early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
