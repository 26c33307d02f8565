/**
 * `npm run emulators` as a user runs it: its export lines point scf:serve and fc:invoke at the
 * emulators; a Record lands in the COS emulator (and in --dump-dir), a Stop reaches the TRTC API
 * emulator as a signed RemoveUser, an fc:invoke stores its manifest in the OSS emulator; Ctrl-C
 * closes them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnTracked, type TrackedProcess } from '../support/child-processes';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const isListening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

let work: string;
let dump: string;
let ports: { oss: number; cos: number; trtc: number };
let emulators: TrackedProcess & { stdout(): string };
/** What the export lines set, as a shell that pasted them would have it. */
let exported: Record<string, string>;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'emulators-cli-'));
  dump = join(work, 'dump');
  // Free ports rather than 9101-9103, so a developer's own `npm run emulators` does not collide.
  ports = { oss: await freePort(), cos: await freePort(), trtc: await freePort() };
  emulators = spawnTracked(
    'npm',
    ['run', '-s', 'emulators', '--', '--dump-dir', dump, '--oss-port', String(ports.oss), '--cos-port', String(ports.cos), '--trtc-port', String(ports.trtc)],
    { stdout: 'capture', env: process.env },
  );
  const stdout = await waitFor('the export lines', () => (emulators.stdout().includes('Ctrl-C stops') ? emulators.stdout() : undefined));
  exported = Object.fromEntries([...stdout.matchAll(/^export ([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
});

afterAll(async () => {
  await emulators?.stop('SIGKILL');
});

function startServe(args: string[]) {
  return spawnTracked(process.execPath, ['--import', 'tsx', 'scripts/scf-serve.ts', '--port', '0', ...args], {
    env: { ...process.env, ...exported, LOG_LEVEL: 'warn', MEDIA_TMP_DIR: work },
  });
}

/** scf:serve's URL, once its listening line is out. */
async function listeningUrl(serve: TrackedProcess): Promise<string> {
  const port = await waitFor('scf:serve to listen', () => /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(serve.output())?.[1]);
  return `http://127.0.0.1:${port}/`;
}

describe('npm run emulators', () => {
  it('prints export lines for the three endpoints, the test keys and a control secret', () => {
    expect(exported).toEqual({
      OSS_ENDPOINT: `http://127.0.0.1:${ports.oss}`,
      ALIBABA_CLOUD_ACCESS_KEY_ID: expect.any(String),
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: expect.any(String),
      COS_ENDPOINT: `http://127.0.0.1:${ports.cos}`,
      TRTC_API_ENDPOINT: `http://127.0.0.1:${ports.trtc}`,
      TENCENTCLOUD_SECRETID: expect.any(String),
      TENCENTCLOUD_SECRETKEY: expect.any(String),
      CONTROL_SECRET: expect.stringMatching(/^.{16,}$/),
    });
    expect(emulators.stdout()).toMatch(new RegExp(`^# trtc +http://127\\.0\\.0\\.1:${ports.trtc} `, 'm'));
  });

  it('serves scf:serve: a Record lands in the COS emulator, a Stop with the bearer secret is a signed RemoveUser', async () => {
    const scenario = JSON.stringify({ anchors: [{ userId: 'alice' }], end: { at: 1, reason: 'dismissed' } });
    const serve = startServe(['--room', `sim:${scenario}`]);
    try {
      const url = await listeningUrl(serve);
      const base = { SdkAppId: 1400000001, RoomId: 4321, UserId: 'recorder_4321' };

      const record = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...base, UserSig: 'sig', Mode: '00', CosConfig: { Region: 'ap-guangzhou', Bucket: 'media-1250000000', Path: '/e2e/' } }),
      });
      const recorded = (await record.json()) as { Files: Array<{ Status: number; RecordFile: string }> };
      expect(record.status, JSON.stringify(recorded)).toBe(200);
      expect(recorded.Files).toMatchObject([{ Status: 1 }]);
      const key = decodeURIComponent(new URL(recorded.Files[0]!.RecordFile).pathname.slice(1));
      await waitFor('the dump of the recording', () => (existsSync(join(dump, 'media-1250000000', key)) ? true : undefined));
      expect(readFileSync(join(dump, 'media-1250000000', key)).subarray(0, 3).toString('latin1')).toMatch(/^(ID3|\xff)/);
      expect(emulators.output()).toContain(`cos: stored media-1250000000/${key}`);

      const stop = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${exported.CONTROL_SECRET}` },
        body: JSON.stringify({ Action: 'Stop', ...base }),
      });
      const stopped = await stop.json();
      expect(stop.status, JSON.stringify(stopped)).toBe(200);
      expect(stopped).toMatchObject({ Action: 'Stop', RoomId: 4321, TrtcRequestId: expect.any(String) });
      await waitFor('the RemoveUser line', () =>
        emulators.output().includes('trtc: RemoveUser accepted (TC3 signature verified): SdkAppId=1400000001 RoomId=4321 UserIds=recorder_4321') ? true : undefined,
      );
    } finally {
      await serve.stop('SIGTERM');
    }
    expect(await serve.exited).toBe(0);
  });

  it('a Stop sent while scf:serve records kicks its simulated room: the Record answers within 2 s, StopReason kicked', async () => {
    const scenario = JSON.stringify({ anchors: [{ userId: 'alice' }], end: { at: 60, reason: 'dismissed' } });
    const serve = startServe(['--room', `sim:${scenario}`]);
    try {
      const url = await listeningUrl(serve);
      const base = { SdkAppId: 1400000001, RoomId: 4322, UserId: 'recorder_4322' };
      const cosConfig = { Region: 'ap-guangzhou', Bucket: 'media-1250000000', Path: '/e2e-stop/' };
      // In the background, as `curl … &` would: it answers when the recording ends.
      const recording = fetch(url, { method: 'POST', body: JSON.stringify({ ...base, UserSig: 'sig', Mode: '00', CosConfig: cosConfig }) }).then(
        async (answer) => ({ status: answer.status, result: (await answer.json()) as { StopReason: string; Files: Array<{ UserId: string; Status: number; Duration: number }> }, at: Date.now() }),
      );
      // Recording: its first fragment is in COS.
      await waitFor('the recording to reach COS', () => (emulators.output().includes('cos: stored media-1250000000/e2e-stop/4322/alice/') ? true : undefined), 30_000);

      const stopSentAt = Date.now();
      const stop = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${exported.CONTROL_SECRET}` },
        body: JSON.stringify({ Action: 'Stop', ...base }),
      });
      expect(stop.status, await stop.clone().text()).toBe(200);
      const { status, result, at } = await recording;
      expect(status).toBe(200);
      expect(result).toMatchObject({ StopReason: 'kicked', Files: [{ UserId: 'alice', Status: 1 }] });
      expect((at - stopSentAt) / 1000, 'seconds from Stop sent to the Record answered').toBeLessThan(2);
      expect(result.Files[0]!.Duration).toBeLessThan(30);
      expect(emulators.output()).toContain('SdkAppId=1400000001 RoomId=4322 UserIds=recorder_4322 region=ap-guangzhou; kicked 1 simulated room');
    } finally {
      await serve.stop('SIGTERM');
    }
  });

  it('serves fc:invoke with the minimal event: the manifest lands in the OSS emulator', async () => {
    const event = JSON.stringify({ rtmp_url: 'rtmp://127.0.0.1:1/live/none', bucket: 'snap-bucket', dst: 'e2e', connect_timeout: 1 });
    const invoke = spawnTracked(process.execPath, ['--import', 'tsx', 'scripts/fc-invoke.ts', '--event', event], {
      env: { ...process.env, ...exported, FC_REGION: undefined, LOG_LEVEL: 'error', MEDIA_TMP_DIR: work },
      stdout: 'capture',
    });
    expect(await invoke.exited).toBe(1);
    // No source: an error result, but stored through the real SDK, signed, in the default region.
    expect(JSON.parse(invoke.stdout().trim().split('\n').pop()!)).toMatchObject({ status: 'error', region: 'cn-hangzhou', manifest_key: 'e2e/manifest.json' });
    await waitFor('the dump of the manifest', () => (existsSync(join(dump, 'snap-bucket', 'e2e', 'manifest.json')) ? true : undefined));
    expect(JSON.parse(readFileSync(join(dump, 'snap-bucket', 'e2e', 'manifest.json'), 'utf8'))).toMatchObject({ snapshots: [] });
  });

  it('says in one line that a port is busy (exit 2), and closes on Ctrl-C', async () => {
    const second = spawnTracked(process.execPath, ['--import', 'tsx', 'scripts/emulators.ts', '--oss-port', String(ports.oss)], { env: process.env });
    expect(await second.exited).toBe(2);
    expect(second.output().trim()).toBe(`emulators: port ${ports.oss} is already in use: stop whatever listens there, or pick another with --oss-port (npm run emulators -- --help)`);

    await emulators.stop('SIGINT');
    expect(emulators.output()).toContain('emulators: SIGINT, closing');
    for (const port of Object.values(ports)) expect(await isListening(port)).toBe(false);
  });
});
