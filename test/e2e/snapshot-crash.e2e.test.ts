/**
 * A SIGKILLed invocation (platform timeout, OOM) loses seconds, not the job: its ffmpegs do not
 * outlive it, what it stored is indexed by the journal, and the next invocation on the instance
 * stores what it left on disk and removes its work dir — never touching a live invocation's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnapshotHandler } from '../../functions/fc-snapshot';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import type { SnapshotResult } from '../../shared/snapshot/job';
import { createLocalStore } from '../../shared/storage/local';
import { claimWorkDir, WORK_DIR_ENV } from '../../shared/work-dirs';
import { decodeImage, makeTestStream } from '../support/media-tools';
import { isProcessRunning, processesUnderWorkRoot } from '../support/process';
import { publish, waitForPublishing, type Publisher } from '../support/publisher';
import { startNodeMediaServer, type RtmpServer } from '../support/rtmp-server';

let server: RtmpServer;
let stream: string;
let root: string;

beforeAll(async () => {
  [server, stream, root] = await Promise.all([
    startNodeMediaServer(),
    makeTestStream({ width: 320, height: 180, fps: 25, gopSeconds: 1, seconds: 10, audio: true }),
    mkdtemp(join(tmpdir(), 'snapshot-crash-')),
  ]);
});
afterAll(() => server?.stop());

function localHandler(tmpRoot: string, bucketRoot: string) {
  return createSnapshotHandler({
    env: { MEDIA_TMP_DIR: tmpRoot, LOG_LEVEL: 'warn' },
    createStore: (target) => createLocalStore({ root: bucketRoot, bucket: target.bucket }),
  });
}

async function storedSnapshots(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).filter((name) => /^\d{14}\.jpg$/.test(name)).sort() : [];
}

describe('a SIGKILLed snapshot invocation', () => {
  it("leaves no ffmpeg running, an index of what it stored, and its leftovers to the next invocation", async () => {
    const tmpRoot = join(root, 'tmp-kill');
    const bucketRoot = join(root, 'bucket-kill');
    const name = 'kill';
    const publisher: Publisher = publish(stream, server.url(name), { loop: true });
    let host: ChildProcess | undefined;
    try {
      await waitForPublishing(server, name, 15_000);
      host = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/snapshot-host.ts', server.url(name), tmpRoot, bucketRoot, 'cam'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let uploaded = 0;
      host.stdout!.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().trim().split('\n')) uploaded = Math.max(uploaded, (JSON.parse(line) as { uploaded: number }).uploaded);
      });
      await expect.poll(() => uploaded, { timeout: 30_000, interval: 100 }).toBeGreaterThanOrEqual(8);
      const ffmpegs = await processesUnderWorkRoot(tmpRoot);
      expect(ffmpegs.length).toBe(1); // the imager: Node receives the stream itself
      const hostExited = once(host, 'exit');
      host.kill('SIGKILL');
      const killedAt = Date.now();

      // Its imager dies with it, at the end of its input (after writing what it held).
      await expect.poll(async () => (await processesUnderWorkRoot(tmpRoot)).length, { timeout: 5_000, interval: 100 }).toBe(0);

      // What it stored more than one journal interval (5 s) before the kill is in the journal.
      const dstDir = join(bucketRoot, 'crash-bucket', 'cam');
      const journal = (await readFile(join(dstDir, 'manifest.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { key: string });
      const journaled = new Set(journal.map((entry) => entry.key));
      for (const file of await storedSnapshots(dstDir)) {
        if ((await stat(join(dstDir, file))).mtimeMs < killedAt - 6_000) expect(journaled.has(`cam/${file}`), file).toBe(true);
      }
      expect(existsSync(join(dstDir, 'manifest.json'))).toBe(false); // written only at a clean end

      // The next invocation on an instance starts once the killed one is gone. Its imager ends as
      // soon as the kernel closes its files, while the process may still be exiting (one run in the
      // full suite found it alive then): wait for the exit itself, as a real next invocation would.
      await hostExited;
      // The next invocation stores the dead one's leftovers and removes its dir before capturing.
      const deadDirs = (await readdir(tmpRoot)).filter((entry) => entry.startsWith('snapshot-'));
      expect(deadDirs).toHaveLength(1);
      const leftovers = (await readdir(join(tmpRoot, deadDirs[0]!))).filter((entry) => entry.endsWith('.jpg'));
      const before = await storedSnapshots(dstDir);
      const result = (await localHandler(tmpRoot, bucketRoot)(
        { rtmp_url: server.url(name), bucket: 'crash-bucket', region: 'cn-hangzhou', dst: 'next', max_snapshots: 1 },
        { requestId: 'next' },
      )) as SnapshotResult;
      expect(result).toMatchObject({ status: 'ok', counts: { uploaded: 1 } });
      const left = await readdir(tmpRoot);
      // Should it fail: what the dead dir still holds.
      const leftDetail = await Promise.all(left.map(async (dir) => ({ dir, files: await readdir(join(tmpRoot, dir)).catch(() => []) })));
      expect(left, JSON.stringify(leftDetail)).toEqual([]);
      const after = await storedSnapshots(dstDir);
      expect(after.length).toBe(before.length + leftovers.length);
      for (const file of after) expect(await decodeImage(await readFile(join(dstDir, file)), 'jpg'), file).toMatchObject({ frames: 1, width: 320 });
      const recovered = (await readFile(join(dstDir, 'manifest.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { recovered?: boolean });
      expect(recovered.filter((entry) => entry.recovered)).toHaveLength(leftovers.length);
    } finally {
      host?.kill('SIGKILL');
      await publisher.stop();
    }
  });

  it("is cleaned up by the next invocation even when its ffmpeg hangs on, and a live invocation's dir is left alone", async () => {
    const tmpRoot = join(root, 'tmp-reap');
    const bucketRoot = join(root, 'bucket-reap');
    await mkdir(tmpRoot, { recursive: true });
    // A dead invocation: its owner pid does not exist, its ffmpeg still runs, one whole image left.
    const deadDir = join(tmpRoot, 'snapshot-1-dead');
    await mkdir(deadDir);
    const recovery = { bucket: 'reap-bucket', region: 'cn-hangzhou', prefix: 'old/', format: 'jpg', intervalSec: 1, requestId: 'dead' };
    await writeFile(join(deadDir, 'owner.json'), JSON.stringify({ pid: 2 ** 22 + 17, pidStart: '1', requestId: 'dead', kind: 'snapshot', createdAt: new Date().toISOString(), recovery }));
    // Imager time counts double (see imagerTime): r0-24000 is 12 s after the base, slot 12.
    const originMs = Date.UTC(2026, 0, 2, 3, 3, 55);
    await writeFile(join(deadDir, 'runs.jsonl'), `${JSON.stringify({ run: 0, baseMs: originMs, originMs, intervalMs: 1000 })}\n`);
    const image = await makeJpeg();
    await writeFile(join(deadDir, 'r0-24000.jpg'), image);
    await writeFile(join(deadDir, 'r0-26000.jpg'), image.subarray(0, image.length - 100)); // cut by the kill
    const orphan = spawn(resolveFfmpegPath(), ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=64x64:rate=5', '-f', 'null', '-'], {
      env: { ...process.env, [WORK_DIR_ENV]: deadDir },
      stdio: 'ignore',
    });
    // A live invocation's dir (this process owns it).
    const liveDir = await claimWorkDir(tmpRoot, 'snapshot', 'live');
    try {
      const result = (await localHandler(tmpRoot, bucketRoot)(
        { rtmp_url: 'rtmp://127.0.0.1:9/live/none', bucket: 'reap-bucket', region: 'cn-hangzhou', dst: 'new', connect_timeout: 1 },
        { requestId: 'reaper' },
      )) as SnapshotResult;
      expect(result.stop_reason).toBe('error');
      expect(isProcessRunning(orphan.pid!)).toBe(false);
      expect(existsSync(deadDir)).toBe(false);
      expect(existsSync(liveDir)).toBe(true);
      // The whole image is stored under the key the dead job would have used; the cut one is not.
      expect(await readdir(join(bucketRoot, 'reap-bucket', 'old'))).toEqual(['20260102030407.jpg', 'manifest.jsonl']);
      expect(await readFile(join(bucketRoot, 'reap-bucket', 'old', '20260102030407.jpg'))).toEqual(image);
    } finally {
      orphan.kill('SIGKILL');
    }
  });
});

async function makeJpeg(): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'jpeg-'));
  const file = join(dir, 'one.jpg');
  const made = spawn(resolveFfmpegPath(), ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x64', '-frames:v', '1', file]);
  await new Promise((resolve) => made.on('exit', resolve));
  return readFile(file);
}
