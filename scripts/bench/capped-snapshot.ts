/**
 * The capped part of `npm run bench:snapshot`: the built handler (index.js and its bin/ffmpeg, as
 * shipped) on a live stream, inside a cgroup sized like an FC instance, and the original sample's
 * ffmpeg command in a group of its own with the same cap, both pulling the same stream at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { OssEmulator } from '../../test/emulators/oss-emulator';
import { publish, waitForPublishing } from '../../test/support/publisher';
import type { RtmpServer } from '../../test/support/rtmp-server';
import { enterCommand, openCappedGroup, type Cap, type CappedGroup, type CapUsage } from './cgroup';
import { originalSampleArgs } from './original-sample';
import { percentile } from './stats';

export interface CappedRunRequest {
  cap: Cap;
  /** A built fc-snapshot folder (index.js, bin/ffmpeg). */
  functionDir: string;
  /** The ffmpeg the original sample runs. */
  sampleFfmpeg: string;
  stream: string;
  streamSeconds: number;
  server: RtmpServer;
  oss: OssEmulator;
  credentials: { accessKeyId: string; accessKeySecret: string };
  bucket: string;
  workDir: string;
  /** What the event asks for besides the stream and the bucket. */
  snapshotEvent: { interval: number; format: string; record?: string };
  log: (message: string) => void;
}

export interface CappedRunReport {
  cap: Cap;
  stored: number;
  shed: number;
  /** With `record`: seconds recorded, over all objects, and how many were stored whole. */
  recorded?: { seconds: number; objects: number; stored: number };
  stopReason: string;
  status: string;
  /** How much later than at the start the last snapshots were stored (see `lagGrowth`). */
  lagGrowthP95Ms: number;
  lagStartMs: number;
  /** Invocation (process start) → first snapshot stored; and from index.js loaded. */
  firstSnapshotMs: number | null;
  firstSnapshotAfterLoadMs: number | null;
  functionUsage: CapUsage & { peakAnonymousBytes: number };
  functionExit: string;
  sampleImages: number;
  sampleUsage: CapUsage & { peakAnonymousBytes: number };
}

/** How often the groups' anonymous memory is read for its peak (the kernel keeps no peak of it). */
const MEMORY_POLL_MS = 250;
/** Past the stream's end, how long the function may take to flush before it is stopped. */
const FINISH_GRACE_MS = 60_000;

interface Manifest {
  counts: { shed: number };
  snapshots: Array<{ wall_time: string; uploaded_at: string | null }>;
}

/**
 * Lag of each stored snapshot: upload time minus its stream time (the timeline is wall-anchored).
 * Growth: each lag less the median lag of the first five, at the 95th percentile. A function that
 * keeps up stays near 0; one falling behind grows through the run.
 */
export function lagGrowth(snapshots: Manifest['snapshots']): { startMs: number; p95Ms: number } {
  const lags = snapshots.filter((s) => s.uploaded_at).map((s) => Date.parse(s.uploaded_at!) - Date.parse(s.wall_time));
  if (lags.length === 0) return { startMs: Number.NaN, p95Ms: Number.NaN };
  const start = percentile(lags.slice(0, 5), 50);
  return { startMs: start, p95Ms: percentile(lags.map((lag) => lag - start), 95) };
}

/** Polls a group's anonymous memory, keeping the highest reading. */
function watchAnonymousPeak(group: CappedGroup): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => {
    group.usage().then((usage) => (peak = Math.max(peak, usage.anonymousBytes)), () => {});
  }, MEMORY_POLL_MS);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit ${code}`;
}

export async function runCapped(request: CappedRunRequest): Promise<CappedRunReport | { unavailable: string }> {
  const tag = `${Math.round(request.cap.cpus * 1000)}mcpu-${Math.round(request.cap.memoryBytes / 2 ** 20)}mb-${process.pid}`;
  const functionGroup = await openCappedGroup(`bench-fc-${tag}`, request.cap);
  if ('unavailable' in functionGroup) return functionGroup;
  const sampleGroup = await openCappedGroup(`bench-sample-${tag}`, request.cap);
  if ('unavailable' in sampleGroup) {
    await functionGroup.remove();
    return sampleGroup;
  }
  const children: ChildProcess[] = [];
  try {
    const name = `capped-${tag}`;
    const url = request.server.url(name);
    const publisher = publish(request.stream, url);
    await waitForPublishing(request.server, name, 20_000);

    const prefix = `capped/${tag}`;
    const event = { rtmp_url: url, bucket: request.bucket, dst: prefix, idle_timeout: 5, ...request.snapshotEvent };
    // FC's environment for this function (s.yaml), and nothing of ours: no NODE_OPTIONS, no tsx.
    const functionEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LOG_LEVEL: 'info',
      OSS_ENDPOINT: request.oss.endpoint,
      ALIBABA_CLOUD_ACCESS_KEY_ID: request.credentials.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: request.credentials.accessKeySecret,
      MEDIA_TMP_DIR: join(request.workDir, `fc-${tag}`),
    };
    await mkdir(functionEnv.MEDIA_TMP_DIR, { recursive: true });
    const runner = enterCommand(functionGroup, process.execPath, [join(__dirname, 'fc-runtime.cjs'), request.functionDir, JSON.stringify(event), '900']);
    const invokedAt = Date.now();
    const fn = spawn(runner.file, runner.args, { env: functionEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(fn);
    let output = '';
    let stderrTail = '';
    fn.stdout!.on('data', (chunk) => (output += chunk));
    // Logs are JSON lines on stderr, as on FC; kept short, for a failure message.
    fn.stderr!.on('data', (chunk) => (stderrTail = (stderrTail + chunk).slice(-4000)));
    const fnExit = once(fn, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;

    const sampleDir = join(request.workDir, `sample-${tag}`);
    await mkdir(sampleDir, { recursive: true });
    const sampleCommand = enterCommand(sampleGroup, request.sampleFfmpeg, originalSampleArgs(url, sampleDir));
    const sample = spawn(sampleCommand.file, sampleCommand.args, { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(sample);
    const sampleExit = once(sample, 'exit');

    const functionMemory = watchAnonymousPeak(functionGroup);
    const sampleMemory = watchAnonymousPeak(sampleGroup);
    request.log(`${describeCap(request.cap)}: publishing ${request.streamSeconds} s; the function and the original sample pull it, each in its own group`);
    await publisher.exited;
    // The sample never ends on its own (a player of a stream that left waits forever).
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    sample.stdin!.end('q');
    const sampleKill = setTimeout(() => sample.kill('SIGKILL'), 2_000);
    await sampleExit;
    clearTimeout(sampleKill);
    const sampleUsage = { ...(await sampleGroup.usage()), peakAnonymousBytes: sampleMemory.stop() };

    const functionKill = setTimeout(() => fn.kill('SIGKILL'), FINISH_GRACE_MS);
    const [code, signal] = await fnExit;
    clearTimeout(functionKill);
    const functionUsage = { ...(await functionGroup.usage()), peakAnonymousBytes: functionMemory.stop() };
    const line = output.trim().split('\n').pop();
    const reported = code === 0 && line ? (JSON.parse(line) as { startedAt: number; loadedAt: number; result: { status: string; stop_reason: string; counts: { uploaded: number; shed: number }; recordings?: Array<{ duration: number; status: string }> } }) : undefined;
    if (!reported) request.log(`${describeCap(request.cap)}: the function ended with ${describeExit(code, signal)}; its last log lines:\n${stderrTail}`);

    const manifestBytes = request.oss.getObject(request.bucket, `${prefix}/manifest.json`);
    const manifest = manifestBytes ? (JSON.parse(manifestBytes.toString()) as Manifest) : undefined;
    const storedAt = (manifest?.snapshots ?? []).filter((s) => s.uploaded_at).map((s) => Date.parse(s.uploaded_at!));
    const firstStored = storedAt.length > 0 ? Math.min(...storedAt) : undefined;
    const lag = lagGrowth(manifest?.snapshots ?? []);
    const sampleImages = await countWholeFiles(sampleDir);
    return {
      cap: request.cap,
      stored: reported?.result.counts.uploaded ?? 0,
      shed: reported?.result.counts.shed ?? manifest?.counts.shed ?? 0,
      recorded: recordedOf(reported?.result.recordings),
      stopReason: reported?.result.stop_reason ?? '-',
      status: reported?.result.status ?? describeExit(code, signal),
      lagGrowthP95Ms: lag.p95Ms,
      lagStartMs: lag.startMs,
      firstSnapshotMs: firstStored !== undefined ? firstStored - invokedAt : null,
      firstSnapshotAfterLoadMs: firstStored !== undefined && reported ? firstStored - reported.loadedAt : null,
      functionUsage,
      functionExit: describeExit(code, signal),
      sampleImages,
      sampleUsage,
    };
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(children.map((child) => (child.exitCode === null && child.signalCode === null ? once(child, 'exit') : undefined)));
    await functionGroup.remove();
    await sampleGroup.remove();
  }
}

/** Images the sample finished writing (a killed ffmpeg may leave its last one empty). */
async function countWholeFiles(dir: string): Promise<number> {
  let count = 0;
  for (const name of await readdir(dir)) if ((await stat(join(dir, name))).size > 0) count++;
  return count;
}

export function describeCap(cap: Cap): string {
  return `${cap.cpus} vCPU / ${Math.round(cap.memoryBytes / 2 ** 20)} MB`;
}

function recordedOf(recordings: Array<{ duration: number; status: string }> | undefined): CappedRunReport['recorded'] {
  if (!recordings) return undefined;
  return { seconds: recordings.reduce((sum, r) => sum + r.duration, 0), objects: recordings.length, stored: recordings.filter((r) => r.status === 'stored').length };
}
