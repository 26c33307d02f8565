import type * as z from 'zod';
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
  // reportInput: so a missing field (input undefined) can be told from a wrong one. The input is
  // only compared with undefined, never copied into a message.
  const parsed = schema.safeParse(input, { reportInput: true });
  if (parsed.success) return parsed.data;
  const issues: FieldIssue[] = [];
  for (const issue of parsed.error.issues) {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const shown = issue.keys.slice(0, MAX_UNKNOWN_KEYS_SHOWN).map((key) => (path ? `${path}.${key}` : key));
      const more = issue.keys.length > MAX_UNKNOWN_KEYS_SHOWN ? ` (and ${issue.keys.length - MAX_UNKNOWN_KEYS_SHOWN} more)` : '';
      issues.push({ field: shown.join(', ') + more, message: `unknown field; allowed fields are: ${allowedKeys.join(', ')}` });
    } else {
      issues.push({ field: path || 'event', message: missingFieldMessage(issue, schema) ?? issue.message });
    }
  }
  throw new ValidationError(issues);
}

/** How a missing value of each zod type is described: `is required (a string)`. */
const EXPECTED_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
};

/**
 * For an absent field, "is required" and the shape expected (for an object, its required fields),
 * in place of zod's "expected object, received undefined" or a type message such as "must be a
 * string" that reads as if a wrong value had been sent. Undefined for any other issue.
 */
export function missingFieldMessage(issue: z.core.$ZodIssue, schema: z.ZodType): string | undefined {
  if (!('input' in issue) || issue.input !== undefined) return undefined;
  if (issue.code === 'invalid_type') {
    if (issue.expected === 'object') {
      const required = requiredKeys(schemaAt(schema, issue.path));
      if (required.length > 0) return `is required: an object with ${required.join(', ')}`;
    }
    return `is required (${EXPECTED_NAMES[issue.expected] ?? issue.expected})`;
  }
  if (issue.code === 'invalid_value') return `is required (one of ${issue.values.map((value) => JSON.stringify(value)).join(', ')})`;
  return 'is required';
}

/** Zod's own definition objects; only the fields read below. */
interface SchemaDefinition {
  type: string;
  shape?: Record<string, SchemaNode>;
  innerType?: SchemaNode;
  in?: SchemaNode;
  element?: SchemaNode;
}
interface SchemaNode {
  /** Set ("optional", "defaulted") when the field may be left out: zod's own test for an optional key. */
  _zod: { def: SchemaDefinition; optin?: string };
}

/** Wrappers that do not change which fields an object has. */
const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional']);

/** The schema that validates the value at `path`, looking through wrappers and pipes. */
function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = schema as unknown as SchemaNode;
  const unwrap = (n: SchemaNode | undefined): SchemaNode | undefined => {
    while (n && (WRAPPERS.has(n._zod.def.type) || n._zod.def.type === 'pipe')) n = n._zod.def.type === 'pipe' ? n._zod.def.in : n._zod.def.innerType;
    return n;
  };
  for (const key of path) {
    node = unwrap(node);
    const def: SchemaDefinition | undefined = node?._zod.def;
    if (def?.type === 'object' && typeof key === 'string') node = def.shape?.[key];
    else if (def?.type === 'array' && typeof key === 'number') node = def.element;
    else return undefined;
  }
  return unwrap(node);
}

function requiredKeys(node: SchemaNode | undefined): string[] {
  const shape = node?._zod.def.type === 'object' ? node._zod.def.shape : undefined;
  return Object.entries(shape ?? {}).filter(([, field]) => field._zod.optin === undefined).map(([key]) => key);
}
