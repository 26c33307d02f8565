/**
 * One rule for the local runners' exit codes: 0 everything was done and stored, 2 the input was
 * invalid (retrying the same input cannot help), 1 anything else (failed, partly stored).
 */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_INVALID = 2;

/** fc-snapshot: `status` is ok, partial, error or invalid. */
export function snapshotExitCode(result: { status?: unknown }): number {
  if (result.status === 'invalid') return EXIT_INVALID;
  return result.status === 'ok' ? EXIT_OK : EXIT_FAILED;
}

interface RecordLikeResult {
  Error?: { Code?: unknown };
  Files?: Array<{ Status?: unknown }>;
}

/**
 * The result inside an answer: over API gateway or a function URL the handler answers
 * `{statusCode, headers, body}` with the result as JSON in `body`; a direct invocation gets the
 * result itself.
 */
export function unwrapHttpAnswer(answer: unknown): { statusCode?: number; result: unknown } {
  if (typeof answer !== 'object' || answer === null) return { result: answer };
  const http = answer as { statusCode?: unknown; body?: unknown; isBase64Encoded?: unknown };
  if (typeof http.statusCode !== 'number' || typeof http.body !== 'string') return { result: answer };
  const text = http.isBase64Encoded === true ? Buffer.from(http.body, 'base64').toString('utf8') : http.body;
  try {
    return { statusCode: http.statusCode, result: JSON.parse(text) };
  } catch {
    return { statusCode: http.statusCode, result: undefined };
  }
}

/**
 * scf-record, from the unwrapped result: 2 for InvalidInput (a 400 over HTTP); 1 for any other
 * Error (also a refused Stop, missing credentials or an unreadable answer), a file not stored
 * (`Status` 0), or a Record that stored nothing (`Files` empty); 0 when every file was stored, or
 * a Stop went through.
 */
export function recordExitCode(answer: unknown): number {
  const { statusCode, result } = unwrapHttpAnswer(answer);
  if (typeof result !== 'object' || result === null) return EXIT_FAILED;
  const { Error: error, Files: files } = result as RecordLikeResult;
  if (error?.Code === 'InvalidInput') return EXIT_INVALID;
  if (error !== undefined || (statusCode !== undefined && statusCode >= 400)) return EXIT_FAILED;
  // A Stop's answer has no Files; a Record's empty Files means nothing was recorded.
  if (files === undefined) return EXIT_OK;
  return files.length > 0 && files.every((file) => file.Status === 1) ? EXIT_OK : EXIT_FAILED;
}
