import { existsSync } from 'node:fs';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runJob, STORE_GIVE_UP_BEFORE_DEADLINE_MS, type JobRuntime } from '../../shared/job/lifecycle';
import { createLogger } from '../../shared/log';
import { createLocalStore } from '../../shared/storage/local';

const logger = createLogger({ requestId: 'lifecycle', level: 'error' });

async function runtime(extra: Partial<JobRuntime> = {}): Promise<JobRuntime> {
  const root = await mkdtemp(join(tmpdir(), 'lifecycle-'));
  return { store: createLocalStore({ root: join(root, 'bucket'), bucket: 'b' }), ffmpegPath: 'ffmpeg', logger, workRoot: join(root, 'work'), finalizeMarginMs: 1_000, ...extra };
}

describe('runJob', () => {
  it('stops at the deadline minus the finalize margin, and ends storage retries 5 s before the deadline', async () => {
    const startedAt = Date.now();
    const rt = await runtime({ deadlineAt: startedAt + STORE_GIVE_UP_BEFORE_DEADLINE_MS + 300, finalizeMarginMs: STORE_GIVE_UP_BEFORE_DEADLINE_MS + 200 });
    const seen = await runJob(rt, {
      kind: 'test',
      requestId: 'r1',
      recoveryInfo: { bucket: 'b', region: 'x' },
      run: async (context) => {
        await new Promise<void>((resolve) => context.armStops(resolve));
        const reason = context.stopReason;
        const stoppedAfter = Date.now() - startedAt;
        await new Promise<void>((resolve) => context.storageSignal.addEventListener('abort', () => resolve(), { once: true }));
        return { reason, stoppedAfter, abortedAfter: Date.now() - startedAt, giveUpAt: context.giveUpAt() - startedAt };
      },
    });
    expect(seen.reason).toBe('deadline');
    expect(seen.stoppedAfter).toBeGreaterThanOrEqual(90);
    expect(seen.abortedAfter).toBeGreaterThanOrEqual(290);
    expect(seen.abortedAfter).toBeGreaterThan(seen.stoppedAfter);
    expect(seen.giveUpAt).toBe(300);
  });

  it('stops on SIGTERM (the abort signal) and at its own limits, whichever comes first', async () => {
    const termination = new AbortController();
    const rt = await runtime({ signal: termination.signal });
    const reasons = await runJob(rt, {
      kind: 'test',
      requestId: 'r2',
      recoveryInfo: { bucket: 'b', region: 'x' },
      run: async (context) => {
        let stops = 0;
        await new Promise<void>((resolve) => context.armStops(() => (stops++, resolve()), [{ atMs: Date.now() + 50, reason: 'max_duration' }]));
        termination.abort(); // a later reason neither replaces the first nor stops the work again
        context.stop('idle');
        return { first: context.stopReason, stops };
      },
    });
    expect(reasons).toEqual({ first: 'max_duration', stops: 1 });
  });

  it('keeps the work dir only when something was left for the next invocation, which stores it', async () => {
    const rt = await runtime();
    await runJob(rt, {
      kind: 'test',
      requestId: 'r3',
      recoveryInfo: { bucket: 'b', region: 'x' },
      run: async (context) => {
        const file = join(context.workDir, 'image.jpg');
        await writeFile(file, 'not stored yet');
        await context.leaveForNextInvocation(file, { bucket: 'b', region: 'x', key: 'kept/image.jpg', contentType: 'image/jpeg' });
      },
    });
    expect((await readdir(rt.workRoot)).filter((name) => name.startsWith('test-'))).toHaveLength(1);
    const stored: string[] = [];
    const next = { ...rt, storeFor: () => ({ ...rt.store, putFile: async (key: string) => (stored.push(key), { attempts: 1 }) }) as unknown as JobRuntime['store'] };
    await runJob(next, { kind: 'test', requestId: 'r4', recoveryInfo: { bucket: 'b', region: 'x' }, run: async () => undefined });
    expect(stored).toEqual(['kept/image.jpg']);
    expect(existsSync(rt.workRoot) ? (await readdir(rt.workRoot)).filter((name) => name.startsWith('test-')) : []).toHaveLength(0);
  });
});
