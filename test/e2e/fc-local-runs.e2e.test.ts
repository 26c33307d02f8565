import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnapshotHandler } from '../../functions/fc-snapshot';
import type { SnapshotResult } from '../../shared/snapshot/job';
import { createLocalStore } from '../../shared/storage/local';
import { makeTestStream } from '../support/media-tools';
import { runningProcessesMatching } from '../support/process';
import { publish, waitForPublishing } from '../support/publisher';
import { NGINX_SKIP_MESSAGE, nginxAvailable, startNginxRtmp, startNodeMediaServer, type RtmpServer } from '../support/rtmp-server';

let stream: string;
let bucketRoot: string;

beforeAll(async () => {
  [stream, bucketRoot] = await Promise.all([
    makeTestStream({ width: 640, height: 360, fps: 25, gopSeconds: 1, seconds: 12, audio: true }),
    mkdtemp(join(tmpdir(), 'fc-local-')),
  ]);
});

function runCli(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/fc-invoke.ts', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

const lastLine = (text: string) => JSON.parse(text.trim().split('\n').pop()!);

describe('npm run fc:invoke', () => {
  let server: RtmpServer;
  beforeAll(async () => {
    server = await startNodeMediaServer();
  });
  afterAll(() => server?.stop());

  it('flushes everything on SIGTERM, prints the result last, and leaves no ffmpeg behind', async () => {
    const url = server.url('sigterm');
    const publisher = publish(stream, url, { loop: true });
    await waitForPublishing(server, 'sigterm', 15_000);
    try {
      const event = JSON.stringify({ rtmp_url: url, bucket: 'local-bucket', region: 'cn-hangzhou', dst: 'term' });
      const cli = runCli(['--event', event, '--local-bucket-root', bucketRoot, '--timeout', '120']);
      await expect.poll(() => /progress taken=3 /.test(cli.stderr()), { timeout: 30_000, interval: 200 }).toBe(true);
      cli.child.kill('SIGTERM');
      expect(await cli.exited).toBe(0);

      const result = lastLine(cli.stdout()) as SnapshotResult;
      expect(result).toMatchObject({ status: 'ok', stop_reason: 'terminated', failed_keys: [] });
      expect(result.counts.uploaded).toBe(result.counts.taken);
      const stored = (await readdir(join(bucketRoot, 'local-bucket', 'term'))).filter((name) => name.endsWith('.jpg'));
      expect(stored).toHaveLength(result.counts.taken);
      expect(cli.stderr()).toMatch(/progress taken=\d+ uploaded=\d+ failed=0 elapsed=[\d.]+s/);
      expect(runningProcessesMatching(`-i ${url}`)).toEqual([]);
    } finally {
      await publisher.stop();
    }
  });

  it('exits 2 on invalid input, with the result as the last line', async () => {
    const cli = runCli(['--event', '{"rtmp_url":"file:///etc/passwd","bucket":"b-b-b"}', '--local-bucket-root', bucketRoot]);
    expect(await cli.exited).toBe(2);
    expect(lastLine(cli.stdout())).toMatchObject({ status: 'invalid', error: { fields: [{ field: 'rtmp_url' }] } });
  });

  it('exits 1 when the source cannot be reached', async () => {
    const cli = runCli(['--event', '{"rtmp_url":"rtmp://127.0.0.1:9/live/x","bucket":"b-b-b","region":"cn-hangzhou","connect_timeout":2}', '--local-bucket-root', bucketRoot]);
    expect(await cli.exited).toBe(1);
    expect(lastLine(cli.stdout())).toMatchObject({ status: 'error', stop_reason: 'error' });
  });
});

describe.skipIf(!nginxAvailable())('interop: nginx-rtmp', () => {
  it('ends on idle after the publisher leaves, with every snapshot stored', async () => {
    const server = (await startNginxRtmp())!;
    try {
      const url = server.url('interop');
      const publisher = publish(stream, url);
      await waitForPublishing(server, 'interop', 15_000);
      const handler = createSnapshotHandler({ env: { LOG_LEVEL: 'warn' }, createStore: (job) => createLocalStore({ root: bucketRoot, bucket: job.bucket }) });
      const job = handler({ rtmp_url: url, bucket: 'nginx-bucket', region: 'cn-hangzhou', dst: 'nginx', idle_timeout: 3 }, { requestId: 'nginx' });
      await publisher.exited;
      const publisherGoneAt = Date.now();
      const result = (await job) as SnapshotResult;
      expect(Date.now() - publisherGoneAt).toBeLessThan(8_000);
      expect(result).toMatchObject({ status: 'ok', stop_reason: 'idle' });
      expect(result.counts.taken).toBeGreaterThanOrEqual(5);
      const manifest = JSON.parse(await readFile(join(bucketRoot, 'nginx-bucket', 'nginx', 'manifest.json'), 'utf8'));
      expect(manifest.snapshots).toHaveLength(result.counts.taken);
    } finally {
      await server.stop();
    }
  });
});

if (!nginxAvailable()) {
  describe('interop: nginx-rtmp', () => {
    it.skip(NGINX_SKIP_MESSAGE, () => {});
  });
  console.warn(NGINX_SKIP_MESSAGE);
}
