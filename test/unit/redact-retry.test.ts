import { describe, expect, it } from 'vitest';
import { isRetryable, MediaError, StorageError } from '../../shared/errors';
import { createLogger } from '../../shared/log';
import { redact, redactUrls } from '../../shared/redact';
import { withRetry } from '../../shared/retry';

describe('redact', () => {
  it('masks URL credentials and auth query values', () => {
    expect(redactUrls('rtmp://user:pass@host/app/s?auth_key=123-0-0-abc&x=1')).toBe('rtmp://***@host/app/s?auth_key=***&x=1');
    expect(redactUrls('https://h/s.flv?txSecret=abc&txTime=5F')).toBe('https://h/s.flv?txSecret=***&txTime=5F');
  });

  it('masks secret-named fields deeply, including inside errors', () => {
    const value = redact({
      SecretKey: 'sk',
      nested: { UserSig: 'sig', accessKeySecret: 'aks', securityToken: 'tok', keep: 'ok' },
      error: Object.assign(new Error('failed for rtmp://u:p@h/x'), { cause: { Authorization: 'OSS a:b' } }),
    });
    const text = JSON.stringify(value);
    expect(text).not.toMatch(/"sk"|"sig"|"aks"|"tok"|u:p@|OSS a:b/);
    expect(text).toContain('"keep":"ok"');
  });

  it('is applied to every log line', () => {
    const lines: string[] = [];
    createLogger({ requestId: 'r-1', write: (line) => lines.push(line) }).info('start', { url: 'rtmp://a:b@h/x', SecretKey: 'zzz' });
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({ level: 'info', msg: 'start', requestId: 'r-1', url: 'rtmp://***@h/x', SecretKey: '***' });
  });
});

describe('withRetry', () => {
  const policy = { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2, maxElapsedMs: 10_000 };

  it('retries transient failures and reports the attempts', async () => {
    let calls = 0;
    const outcome = await withRetry(async () => {
      if (++calls < 3) throw Object.assign(new Error('busy'), { status: 503 });
      return 'done';
    }, { policy });
    expect(outcome).toEqual({ value: 'done', attempts: 3 });
  });

  it('does not retry a permanent 4xx', async () => {
    let calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw Object.assign(new Error('denied'), { status: 403 });
      }, { policy }),
    ).rejects.toMatchObject({ status: 403, attempts: 1 });
    expect(calls).toBe(1);
  });

  it('stops at the attempt bound', async () => {
    let calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
      }, { policy }),
    ).rejects.toMatchObject({ attempts: 4 });
    expect(calls).toBe(4);
  });

  it('stops at the time bound', async () => {
    let calls = 0;
    const started = Date.now();
    await expect(
      withRetry(async () => {
        calls++;
        throw Object.assign(new Error('slow'), { status: 500 });
      }, { policy: { maxAttempts: 100, baseDelayMs: 40, maxDelayMs: 40, maxElapsedMs: 150 }, random: () => 1 }),
    ).rejects.toThrow('slow');
    expect(calls).toBeLessThan(6);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('classifies errors', () => {
    expect(isRetryable(Object.assign(new Error(), { status: 429 }))).toBe(true);
    expect(isRetryable(Object.assign(new Error(), { statusCode: 404 }))).toBe(false);
    expect(isRetryable(new MediaError('StorageError', 'y', { retryable: true }))).toBe(true);
    expect(isRetryable(new StorageError({ cloud: 'oss', bucket: 'b', key: 'k', status: 403 }, 'no'))).toBe(false);
    expect(isRetryable(new Error('plain'))).toBe(false);
  });
});
