import type { Logger } from './log';

/**
 * Runs `work` with an AbortSignal that fires when the process is told to terminate
 * (SCF's graceful stop and FC's instance shutdown send SIGTERM), so the job can stop
 * capturing, flush and still report. The listeners are removed afterwards.
 */
export async function withTerminationSignal<T>(signals: NodeJS.Signals[], logger: Logger, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const termination = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    logger.warn('termination signal received; finishing up', { signal });
    termination.abort();
  };
  for (const signal of signals) process.on(signal, onSignal);
  try {
    return await work(termination.signal);
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
}

/** How early to stop before the deadline: the configured margin, but short functions keep two thirds of their time for work. */
export function stopMarginMs(timeoutMs: number | undefined, configuredMs: number): number {
  return timeoutMs !== undefined && timeoutMs > 0 ? Math.min(configuredMs, timeoutMs / 3) : configuredMs;
}
