/**
 * `npm run bench:record`: what stopping costs for a 10-minute 720p anchor in mode 02.
 * Measures, in one run: stop → callback through the real finaliser (stream copy to a
 * faststart MP4, upload to the COS emulator, callback POST), against re-encoding the
 * same recording (what a finaliser without stream copy would spend), and prints the ratio.
 *
 * The FLV is made offline with the recorder's own encoder settings (`recordingArgs`) from a
 * test pattern, instead of recording 10 real minutes through the simulator.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deliverCallback } from '../shared/callback';
import { resolveFfmpegPath } from '../shared/ffmpeg/binary';
import { recordingArgs } from '../shared/outputs/recording/encoder-args';
import { finalizeRecording } from '../shared/recording/finalize';
import { createCosStore } from '../shared/storage/cos';
import { startCosEmulator } from '../test/emulators/cos-emulator';

const MINUTES = Number(process.env.BENCH_MINUTES ?? 10);
const keys = { secretId: 'bench-id', secretKey: 'bench-key' };
const ffmpeg = resolveFfmpegPath();

/** The recorder's FLV for one anchor, cached: encoder settings from recordingArgs, input from lavfi. */
function recorderFlv(): string {
  const dir = resolve('.cache', 'bench-record');
  const path = join(dir, `anchor-720p15-${MINUTES}min.flv`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const temp = `${path}.partial.flv`;
  const args = recordingArgs({ video: { width: 1280, height: 720, fps: 15 }, audio: { sampleRate: 48000, channels: 1 }, outputPath: temp });
  // Same output options; the two pipes become lavfi sources of the same formats.
  const seconds = String(MINUTES * 60);
  const inputs = ['-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=15:duration=${seconds}`, '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`];
  const firstMap = args.indexOf('-map');
  const outputOptions = args.slice(firstMap).filter((arg) => arg !== '-progress' && arg !== 'pipe:1');
  log(`making a ${MINUTES}-minute 720p15 recording with the recorder's encoder settings (cached)…`);
  const made = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', ...inputs, ...outputOptions], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error('could not make the benchmark recording');
  renameSync(temp, path);
  return path;
}

async function timeIt<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

async function main() {
  const flv = recorderFlv();
  const work = await mkdtemp(join(tmpdir(), 'bench-record-'));
  const cos = await startCosEmulator({ secretId: keys.secretId, secretKey: keys.secretKey });
  const receiver = createServer((request, response) => request.resume().on('end', () => response.end('ok'))).listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  const callbackUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/done`;
  try {
    const store = createCosStore({ bucket: 'bench-1250000000', region: 'ap-guangzhou', endpoint: cos.endpoint, credentials: keys });
    const recording = join(work, 'anchor.flv');
    await copyFile(flv, recording);

    const stopToCallback = await timeIt(async () => {
      const outcome = await finalizeRecording({ flvPath: recording, mode: '02', key: 'bench/anchor.mp4', store, ffmpegPath: ffmpeg, freeBytes: async () => Number.MAX_SAFE_INTEGER });
      if (outcome.failedStep) throw new Error(`${outcome.failedStep}: ${outcome.error}`);
      const callback = await deliverCallback(callbackUrl, { Files: [{ UserId: 'anchor', Status: 1 }] });
      if (!callback.delivered) throw new Error('callback not delivered');
      return outcome;
    });

    const reencode = await timeIt(async () => {
      const result = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-i', flv, '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-c:a', 'aac', '-b:a', '96k', '-movflags', '+faststart', '-y', join(work, 'reencoded.mp4')]);
      if (result.status !== 0) throw new Error('re-encode failed');
    });

    const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
    console.log(`recording: ${MINUTES} min, 1280x720 15 fps H.264 + AAC in FLV, ${mb(statSync(flv).size)} MB`);
    console.log(`stop → callback (stream copy to faststart MP4 ${mb(stopToCallback.value.bytes ?? 0)} MB, upload to the COS emulator, callback): ${(stopToCallback.ms / 1000).toFixed(2)} s`);
    console.log(`re-encoding the same recording to MP4 (libx264 veryfast, no upload): ${(reencode.ms / 1000).toFixed(2)} s`);
    console.log(`finalising costs ${((100 * stopToCallback.ms) / reencode.ms).toFixed(1)}% of a re-encode   (target < 5%)`);
  } finally {
    receiver.close();
    await cos.close();
    await rm(work, { recursive: true, force: true });
  }
}

function log(message: string) {
  process.stderr.write(`[bench] ${message}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
