/**
 * The recorder with its production room on Linux, Tencent's liteav SDK in the room process:
 * - the real SDK, through the shipped entries (`npm run scf:invoke` from source, and the built
 *   dist/scf-record/image-server.js the liteav deploy image runs), inside a loopback-only network
 *   namespace, where no TRTC server answers: a Record must end in RoomEnterFailed, quickly and cleanly;
 * - `--room sidecar-sim:`: the room simulator's scenario played by the room process behind the SDK's
 *   delegate and through the same pipes, which must record what `--room sim:` records.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RecordResult } from '../../shared/recording/record-job';
import { buildFunctions } from '../../scripts/build';
import { probe } from '../support/media-tools';
import { requireLiteav, requireNetworkNamespaces, runInLoopbackNamespace } from '../support/liteav';
import { processesUnderWorkRoot } from '../support/process';

let work: string;
beforeAll(async () => {
  requireLiteav();
  work = await mkdtemp(join(tmpdir(), 'scf-liteav-'));
});

const lastJsonLine = (text: string) => JSON.parse(text.trim().split('\n').pop()!) as Record<string, unknown>;
const userSig = (JSON.parse(readFileSync('events/scf-record.json', 'utf8')) as { UserSig: string }).UserSig;

describe.concurrent('the production room (liteav) in a loopback-only network namespace', () => {
  beforeAll(() => requireNetworkNamespaces());

  it('npm run scf:invoke -- --event @FILE (no --room, COS at COS_ENDPOINT): RoomEnterFailed, exit 1, within 45 s, nothing left running, no UserSig in the output', async () => {
    const root = join(work, 'invoke');
    await mkdir(root);
    const run = await runInLoopbackNamespace(process.execPath, ['--import', 'tsx', 'test/fixtures/namespace-record.ts', 'invoke', 'events/scf-record.json', root], { timeoutMs: 90_000 });
    const invoked = lastJsonLine(run.stdout) as { code: number; stdout: string; stderr: string; ms: number };
    const result = lastJsonLine(invoked.stdout) as unknown as RecordResult;
    expect(result.Error, invoked.stderr).toMatchObject({ Code: 'RoomEnterFailed', Message: expect.stringMatching(/^entering the TRTC room failed: the SDK/) });
    expect(result).toMatchObject({ StopReason: 'error', Files: [] });
    expect(invoked.code).toBe(1);
    expect(invoked.ms).toBeLessThan(45_000);
    expect(invoked.stdout + invoked.stderr).not.toContain(userSig);
    expect(invoked.stderr).toContain('"msg":"room process ready"');
    expect(await processesUnderWorkRoot(root)).toEqual([]);
  });

  it('the built dist/scf-record/image-server.js (the liteav image\'s entry) runs the room process from its own folder: RoomEnterFailed from the real SDK', async () => {
    const root = join(work, 'image');
    await mkdir(root);
    const dist = join(work, 'dist');
    await buildFunctions({ outDir: dist, functions: ['scf-record'], ffmpeg: false });
    const run = await runInLoopbackNamespace(process.execPath, ['--import', 'tsx', 'test/fixtures/namespace-record.ts', 'image', join(dist, 'scf-record', 'image-server.js'), root], { timeoutMs: 90_000 });
    const served = lastJsonLine(run.stdout) as { status: number; answer: RecordResult; stderr: string; ms: number };
    expect(served.status, served.stderr).toBe(200);
    expect(served.answer).toMatchObject({ RequestId: 'namespace-image', StopReason: 'error', Error: { Code: 'RoomEnterFailed' } });
    expect(served.stderr).toMatch(/"msg":"room process ready".*"sdk":"liteav"/);
    expect(served.ms).toBeLessThan(45_000);
    expect(served.stderr).not.toContain(userSig);
    expect(await processesUnderWorkRoot(root)).toEqual([]);
  });
});

describe('--room sidecar-sim: the simulator through the room process', () => {
  it('records the same files as --room sim: (durations within 0.3 s)', async () => {
    const scenario = {
      anchors: [
        { userId: 'alice', width: 320, height: 180 },
        { userId: 'bob', joinAt: 1, leaveAt: 4, width: 320, height: 180, sampleRate: 16000, videoOff: [{ from: 2, to: 3 }] },
        { userId: 'bob', joinAt: 5, width: 320, height: 180, sampleRate: 16000 },
      ],
      end: { at: 7, reason: 'dismissed' },
    };
    const scenarioFile = join(work, 'scenario.json');
    await writeFile(scenarioFile, JSON.stringify(scenario));
    const invoke = (room: string) =>
      new Promise<{ result: RecordResult; bucket: string }>((resolve, reject) => {
        const bucket = join(work, `bucket-${room}`);
        const child = spawn('npm', ['run', '-s', 'scf:invoke', '--', '--event', '@events/scf-record.json', '--room', `${room}:@${scenarioFile}`, '--local-bucket-root', bucket], {
          env: { ...process.env, LOG_LEVEL: 'warn', MEDIA_TMP_DIR: work },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        child.once('close', (code) => {
          if (code !== 1 && code !== 0) return reject(new Error(`scf:invoke --room ${room} exited ${code}: ${stderr}`));
          resolve({ result: lastJsonLine(stdout) as unknown as RecordResult, bucket });
        });
      });
    const [sim, sidecar] = await Promise.all([invoke('sim'), invoke('sidecar-sim')]);
    for (const run of [sim, sidecar]) {
      expect(run.result.StopReason).toBe('dismissed');
      // The event's Callback URL is unreachable from here: the files are what matters.
      expect(run.result.Files.map((file) => [file.UserId, file.Status])).toEqual([
        ['alice', 1],
        ['bob', 1],
      ]);
    }
    const storedDurations = async (run: typeof sim) =>
      Promise.all(
        run.result.Files.map(async (file) => {
          const info = await probe(fileURLToPath(file.RecordFile));
          return { userId: file.UserId, reported: file.Duration, stored: info.duration!, streams: info.streams.map((s) => s.codec_name).sort() };
        }),
      );
    const [simFiles, sidecarFiles] = await Promise.all([storedDurations(sim), storedDurations(sidecar)]);
    for (const [index, simFile] of simFiles.entries()) {
      const sidecarFile = sidecarFiles[index]!;
      expect(sidecarFile.userId).toBe(simFile.userId);
      expect(sidecarFile.streams).toEqual(['aac', 'h264']);
      expect(Math.abs(sidecarFile.stored - simFile.stored), `${simFile.userId}: sim ${simFile.stored} s, sidecar-sim ${sidecarFile.stored} s`).toBeLessThanOrEqual(0.3);
      expect(Math.abs(sidecarFile.reported - simFile.reported)).toBeLessThanOrEqual(0.3);
    }
    // alice the whole room; bob from his first join to the end, his time away included.
    expect(simFiles.map((file) => Math.round(file.stored))).toEqual([7, 6]);
  });
});
