/**
 * parseOrThrow's messages (shared/validation.ts): an absent field says "is required" and the
 * shape expected; a wrong one keeps its schema's message; no rejected value is ever echoed.
 */
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { toSnapshotJob } from '../../functions/fc-snapshot/event';
import { parseRequest } from '../../functions/scf-record/event';
import { ValidationError, type FieldIssue } from '../../shared/errors';
import { parseOrThrow } from '../../shared/validation';

function issuesOf(run: () => unknown): FieldIssue[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).issues;
  }
  throw new Error('expected a ValidationError');
}

const schema = z.strictObject({
  name: z.string({ error: 'must be a string' }),
  count: z.number({ error: 'must be a number' }).int(),
  flag: z.boolean(),
  tags: z.array(z.string()),
  mode: z.enum(['a', 'b']),
  nested: z
    .strictObject({
      Region: z.string(),
      Bucket: z.string(),
      Secret: z.string().optional(),
      Level: z.number().default(1),
    })
    .superRefine(() => undefined),
  piped: z.strictObject({ inner: z.string() }).transform((value) => value.inner),
  maybe: z.string().optional(),
});
const keys = Object.keys(schema.shape);
const valid = { name: 'n', count: 1, flag: true, tags: [], mode: 'a', nested: { Region: 'r', Bucket: 'b' }, piped: { inner: 'i' } };

describe('parseOrThrow', () => {
  it('says "is required" with the expected shape for every absent field, naming only required sub-fields', () => {
    expect(issuesOf(() => parseOrThrow(schema, {}, keys))).toEqual([
      { field: 'name', message: 'is required (a string)' },
      { field: 'count', message: 'is required (a number)' },
      { field: 'flag', message: 'is required (true or false)' },
      { field: 'tags', message: 'is required (an array)' },
      { field: 'mode', message: 'is required (one of "a", "b")' },
      { field: 'nested', message: 'is required: an object with Region, Bucket' },
      { field: 'piped', message: 'is required: an object with inner' },
    ]);
  });

  it('does the same inside a nested object', () => {
    expect(issuesOf(() => parseOrThrow(schema, { ...valid, nested: { Region: 'r' } }, keys))).toEqual([{ field: 'nested.Bucket', message: 'is required (a string)' }]);
  });

  it('keeps the schema\'s own message for a value of the wrong type, null included', () => {
    expect(issuesOf(() => parseOrThrow(schema, { ...valid, name: 42, count: null }, keys))).toEqual([
      { field: 'name', message: 'must be a string' },
      { field: 'count', message: 'must be a number' },
    ]);
  });

  it('never echoes a rejected value', () => {
    const issues = issuesOf(() => parseOrThrow(schema, { ...valid, name: { secret: 'TOP-SECRET-VALUE' }, nested: 'TOP-SECRET-VALUE' }, keys));
    expect(issues.map((i) => i.field)).toEqual(['name', 'nested']);
    expect(JSON.stringify(issues)).not.toContain('TOP-SECRET');
  });

  it('parses a valid input unchanged', () => {
    expect(parseOrThrow(schema, valid, keys)).toEqual({ ...valid, nested: { Region: 'r', Bucket: 'b', Level: 1 }, piped: 'i' });
  });
});

describe('the handlers\' events', () => {
  it('scf-record: a missing CosConfig and UserId are "required", with the shape', () => {
    const issues = issuesOf(() => parseRequest({ SdkAppId: 1400000001, RoomId: 1234, UserSig: 'sig' }));
    expect(issues).toEqual([
      { field: 'UserId', message: 'is required (a string)' },
      { field: 'CosConfig', message: 'is required: an object with Region, Bucket, Path' },
    ]);
  });

  it('scf-record Stop: a missing SdkAppId and UserId', () => {
    expect(issuesOf(() => parseRequest({ Action: 'Stop', RoomId: 1 }))).toEqual([
      { field: 'SdkAppId', message: 'is required (a number)' },
      { field: 'UserId', message: 'is required (a string)' },
    ]);
  });

  it('fc-snapshot: a missing rtmp_url and bucket', () => {
    expect(issuesOf(() => toSnapshotJob({}, 'r', 'cn-hangzhou'))).toEqual([
      { field: 'rtmp_url', message: 'is required (a string)' },
      { field: 'bucket', message: 'is required (a string)' },
    ]);
  });
});
