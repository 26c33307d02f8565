import type { z } from 'zod';
import { ValidationError, type FieldIssue } from './errors';

/** Platform events arrive as a Buffer, a JSON string or an already-parsed object. */
export function decodeJsonEvent(event: unknown): unknown {
  if (event instanceof Uint8Array) event = Buffer.from(event).toString('utf8');
  if (typeof event === 'string') {
    try {
      return JSON.parse(event);
    } catch {
      throw new ValidationError([{ field: 'event', message: 'must be a JSON object (the body is not valid JSON)' }]);
    }
  }
  return event;
}

/**
 * Parses with a zod schema and turns its issues into field-named messages. Messages
 * never include the rejected value, so a secret typed into the wrong field is not echoed.
 */
const MAX_UNKNOWN_KEYS_SHOWN = 10;

export function parseOrThrow<T>(schema: z.ZodType<T>, input: unknown, allowedKeys: readonly string[]): T {
  input = decodeJsonEvent(input);
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError([{ field: 'event', message: 'must be a JSON object' }]);
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issues: FieldIssue[] = [];
  for (const issue of parsed.error.issues) {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const shown = issue.keys.slice(0, MAX_UNKNOWN_KEYS_SHOWN).map((key) => (path ? `${path}.${key}` : key));
      const more = issue.keys.length > MAX_UNKNOWN_KEYS_SHOWN ? ` (and ${issue.keys.length - MAX_UNKNOWN_KEYS_SHOWN} more)` : '';
      issues.push({ field: shown.join(', ') + more, message: `unknown field; allowed fields are: ${allowedKeys.join(', ')}` });
    } else {
      issues.push({ field: path || 'event', message: issue.message });
    }
  }
  throw new ValidationError(issues);
}
