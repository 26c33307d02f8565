/**
 * One side of `npm run bench:snapshot`, run in its own process so its CPU (and its
 * children's) can be read from /proc without the other side's.
 *   contender.ts seed <rtmp-url> <out-dir>        the original rtmp-snapshot sample's ffmpeg command
 *   contender.ts function <dir> <event-json>      this project's FC handler, built (dir/index.js), as FC loads it
 *   contender.ts receive <rtmp-url>               the function's RTMP reception alone (NodeRtmpSource), until SIGUSR2
 * Stops on SIGUSR2 (the seed never stops on its own); prints one JSON line.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { NodeRtmpSource } from '../../shared/sources/rtmp-source';
import { cpuSeconds } from './cpu';
import { originalSampleArgs } from './original-sample';

async function runSeed(url: string, outDir: string): Promise<unknown> {
  mkdirSync(outDir, { recursive: true });
  const ffmpeg = spawn(resolveFfmpegPath(), originalSampleArgs(url, outDir), {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  await new Promise<void>((resolve) => process.once('SIGUSR2', () => resolve()));
  // Blocked in a read, the seed ignores q; what it writes from here on does not matter.
  ffmpeg.stdin!.end('q');
  const timer = setTimeout(() => ffmpeg.kill('SIGKILL'), 1_000);
  await once(ffmpeg, 'exit');
  clearTimeout(timer);
  return {};
}

async function runFunction(dir: string, eventJson: string): Promise<unknown> {
  // The shipped bundle, with FC's environment (LOG_LEVEL from the parent, info as in s.yaml).
  const { handler } = require(join(dir, 'index.js')) as { handler: (event: Buffer, context: object) => Promise<unknown> };
  const result = await handler(Buffer.from(eventJson), { requestId: 'bench', function: { timeout: 900 } });
  return { result };
}

async function runReception(url: string): Promise<unknown> {
  let packets = 0;
  const source = new NodeRtmpSource({ url, liveness: { firstPacketTimeoutMs: 20_000, stallTimeoutMs: 10_000 }, onVideoTag: () => packets++ });
  await Promise.race([new Promise<void>((resolve) => process.once('SIGUSR2', () => resolve())), source.ended]);
  source.stop();
  return { packets, end: (await source.ended).reason };
}

async function main() {
  const [mode, ...args] = process.argv.slice(2);
  const before = cpuSeconds();
  // A reading whenever the parent asks (SIGUSR1), so it can take a steady-state window without
  // start-up and the end, and the readings cost nothing in between.
  const samples: Array<{ at: number; self: number; children: number }> = [];
  const sample = () => samples.push({ at: Date.now(), ...cpuSeconds() });
  process.on('SIGUSR1', sample);
  const outcome = mode === 'seed' ? await runSeed(args[0]!, args[1]!) : mode === 'receive' ? await runReception(args[0]!) : await runFunction(args[0]!, args[1]!);
  sample();
  const after = cpuSeconds();
  process.stdout.write(
    JSON.stringify({ ...(outcome as object), cpu: { self: after.self - before.self, children: after.children - before.children }, samples }) + '\n',
  );
}

void main();
