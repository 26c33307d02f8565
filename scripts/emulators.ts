/**
 * `npm run emulators`: the test emulators for OSS, COS and the TRTC API (test/emulators/) on fixed
 * local ports, so the local runners can talk to "the cloud" through the real SDKs, signatures
 * checked. Prints the `export` lines that point fc:invoke, scf:invoke and scf:serve at them; runs
 * until Ctrl-C or SIGTERM. `npm run emulators -- --help`.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { startCosEmulator, type CosEmulator } from '../test/emulators/cos-emulator';
import type { StoredObject } from '../test/emulators/emulator-kit';
import { startOssEmulator, type OssEmulator } from '../test/emulators/oss-emulator';
import { startTrtcApiEmulator, type TrtcApiEmulator } from '../test/emulators/trtc-api-emulator';
import { defineCli, listenError, portNumber, runCli, type CliValues } from './lib/cli';

export const EMULATOR_PORTS = { oss: 9101, cos: 9102, trtc: 9103 } as const;

/** Made-up keys the emulators check signatures against; nothing real accepts them. */
export const EMULATOR_KEYS = {
  alibabaAccessKeyId: 'local-emulator-ak',
  alibabaAccessKeySecret: 'local-emulator-oss-secret',
  tencentSecretId: 'AKIDlocalemulator',
  tencentSecretKey: 'local-emulator-tencent-secret',
  /** scf:serve's HTTP Stop needs one (16+ characters); handy to have in the same shell. */
  controlSecret: 'local-emulator-control-secret',
} as const;

export const emulatorsCli = defineCli({
  name: 'emulators',
  summary: 'Runs the OSS, COS and TRTC API emulators (test/emulators/) on 127.0.0.1 until Ctrl-C.',
  options: {
    'oss-port': { type: 'string', placeholder: 'PORT', default: String(EMULATOR_PORTS.oss), description: 'OSS emulator port' },
    'cos-port': { type: 'string', placeholder: 'PORT', default: String(EMULATOR_PORTS.cos), description: 'COS emulator port' },
    'trtc-port': { type: 'string', placeholder: 'PORT', default: String(EMULATOR_PORTS.trtc), description: 'TRTC API emulator port' },
    'dump-dir': {
      type: 'string',
      placeholder: 'DIR',
      description: 'write every object as it is stored to DIR/<bucket>/<key> (OSS and COS alike; a deleted object is removed)',
    },
  },
  notes: [
    'stdout gets the export lines to paste into the shell that runs fc:invoke, scf:invoke or scf:serve; stderr\n' +
      'gets a line per stored object and per accepted RemoveUser. Objects live in memory: they are gone on exit\n' +
      'unless --dump-dir wrote them out. Any bucket name is accepted.',
  ],
  examples: [
    'npm run emulators -- --dump-dir ./local-output/emulated',
    '# in another shell, after pasting the export lines:',
    'npm run fc:invoke -- --event \'{"rtmp_url":"rtmp://127.0.0.1:1935/live/s","bucket":"my-bucket"}\'',
  ],
  exitCodes: [
    [0, 'stopped by Ctrl-C or SIGTERM'],
    [1, 'an emulator failed'],
    [2, 'a command-line mistake, or a port is busy'],
  ],
});

/** The `export` lines for the given endpoints: the contract between this script and the runners. */
export function exportLines(endpoints: { oss: string; cos: string; trtc: string }): string[] {
  return [
    `export OSS_ENDPOINT=${endpoints.oss}`,
    `export ALIBABA_CLOUD_ACCESS_KEY_ID=${EMULATOR_KEYS.alibabaAccessKeyId}`,
    `export ALIBABA_CLOUD_ACCESS_KEY_SECRET=${EMULATOR_KEYS.alibabaAccessKeySecret}`,
    `export COS_ENDPOINT=${endpoints.cos}`,
    `export TRTC_API_ENDPOINT=${endpoints.trtc}`,
    `export TENCENTCLOUD_SECRETID=${EMULATOR_KEYS.tencentSecretId}`,
    `export TENCENTCLOUD_SECRETKEY=${EMULATOR_KEYS.tencentSecretKey}`,
    `export CONTROL_SECRET=${EMULATOR_KEYS.controlSecret}`,
  ];
}

/**
 * Mirrors an emulator's object map into `root/<bucket>/<key>`. The map is the emulator's own
 * store (every put, copy, append and completed multipart upload goes through its set), so
 * wrapping set and delete sees each change without touching the emulator. Writes are queued in
 * order, each to a temporary name and renamed, so a file is never seen half-written.
 */
export function mirrorObjects(cloud: string, objects: Map<string, StoredObject>, root: string | undefined, log: (line: string) => void) {
  let queue: Promise<void> = Promise.resolve();
  const enqueue = (work: () => Promise<void>) => {
    queue = queue.then(work).catch((error: unknown) => log(`${cloud}: dump failed: ${error instanceof Error ? error.message : String(error)}`));
  };
  /** `bucket/key` → a path inside root, or undefined for a key that would leave it (`..`) or names a folder. */
  const pathOf = (id: string): string | undefined => {
    if (root === undefined || id.endsWith('/')) return undefined;
    const target = resolve(root, id);
    const inside = relative(resolve(root), target);
    return inside === '' || inside.startsWith('..') || inside.split(sep).includes('..') ? undefined : target;
  };
  const set = objects.set.bind(objects);
  const remove = objects.delete.bind(objects);
  objects.set = (id, stored) => {
    set(id, stored);
    log(`${cloud}: stored ${id} (${stored.body.length} bytes)`);
    const target = pathOf(id);
    const body = Buffer.from(stored.body);
    if (target) {
      enqueue(async () => {
        await mkdir(dirname(target), { recursive: true });
        const temp = `${target}.${process.pid}.partial`;
        await writeFile(temp, body);
        await rename(temp, target);
      });
    }
    return objects;
  };
  objects.delete = (id) => {
    const existed = remove(id);
    const target = pathOf(id);
    if (existed) log(`${cloud}: deleted ${id}`);
    if (existed && target) enqueue(() => rm(target, { force: true }));
    return existed;
  };
  return { flushed: () => queue };
}

export interface RunningEmulators {
  oss: OssEmulator;
  cos: CosEmulator;
  trtc: TrtcApiEmulator;
  /** Waits for queued dump writes, then closes all three. */
  close(): Promise<void>;
}

export async function startEmulators(options: { ports: { oss: number; cos: number; trtc: number }; dumpDir?: string; log: (line: string) => void }): Promise<RunningEmulators> {
  const started: Array<{ close(): Promise<void> }> = [];
  const start = async <T extends { close(): Promise<void> }>(port: number, option: string, starting: () => Promise<T>): Promise<T> => {
    try {
      const emulator = await starting();
      started.push(emulator);
      return emulator;
    } catch (error) {
      await Promise.all(started.map((e) => e.close()));
      throw listenError(error, port, option);
    }
  };
  const oss = await start(options.ports.oss, 'oss-port', () =>
    startOssEmulator({ accessKeyId: EMULATOR_KEYS.alibabaAccessKeyId, accessKeySecret: EMULATOR_KEYS.alibabaAccessKeySecret, port: options.ports.oss }),
  );
  const cos = await start(options.ports.cos, 'cos-port', () =>
    startCosEmulator({ secretId: EMULATOR_KEYS.tencentSecretId, secretKey: EMULATOR_KEYS.tencentSecretKey, port: options.ports.cos }),
  );
  const trtc = await start(options.ports.trtc, 'trtc-port', () =>
    startTrtcApiEmulator({ secretId: EMULATOR_KEYS.tencentSecretId, secretKey: EMULATOR_KEYS.tencentSecretKey, port: options.ports.trtc }),
  );
  const mirrors = [mirrorObjects('oss', oss.objects, options.dumpDir, options.log), mirrorObjects('cos', cos.objects, options.dumpDir, options.log)];
  trtc.onRemoveUser((call) => {
    const kicked = call.kickedWatchers === 0 ? 'no simulated room was watching for it' : `kicked ${call.kickedWatchers} simulated room${call.kickedWatchers === 1 ? '' : 's'}`;
    options.log(`trtc: ${call.action} accepted (TC3 signature verified): SdkAppId=${call.params.SdkAppId} RoomId=${call.params.RoomId} UserIds=${call.params.UserIds.join(',')} region=${call.region}; ${kicked}`);
  });
  return {
    oss,
    cos,
    trtc,
    close: async () => {
      await Promise.all(mirrors.map((m) => m.flushed()));
      await Promise.all([oss.close(), cos.close(), trtc.close()]);
    },
  };
}

export async function emulators(values: CliValues<typeof emulatorsCli.options>): Promise<number> {
  const ports = { oss: portNumber('oss-port', values['oss-port']), cos: portNumber('cos-port', values['cos-port']), trtc: portNumber('trtc-port', values['trtc-port']) };
  const dumpDir = values['dump-dir'] === undefined ? undefined : resolve(values['dump-dir']);
  if (dumpDir) await mkdir(dumpDir, { recursive: true });
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const running = await startEmulators({ ports, dumpDir, log });
  const endpoints = { oss: running.oss.endpoint, cos: running.cos.endpoint, trtc: running.trtc.endpoint };
  process.stdout.write(
    [
      '# Local cloud emulators. Paste these lines into the shell that runs fc:invoke, scf:invoke or scf:serve:',
      ...exportLines(endpoints),
      `# oss   ${endpoints.oss}   OSS: any bucket; V1/V4 signatures checked against the ALIBABA_CLOUD_* keys above`,
      `# cos   ${endpoints.cos}   COS: any bucket (name-appid); q-sign signatures checked against the TENCENTCLOUD_* keys`,
      `# trtc  ${endpoints.trtc}   TRTC API: RemoveUser / RemoveUserByStrRoomId, TC3 signatures checked`,
      `# ${dumpDir ? `stored objects are written to ${dumpDir}/<bucket>/<key>` : 'objects stay in memory (--dump-dir DIR writes them out)'}; Ctrl-C stops.`,
    ].join('\n') + '\n',
  );

  return new Promise<number>((done) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log(`emulators: ${signal}, closing`);
      running.close().then(
        () => done(0),
        (error: unknown) => {
          log(`emulators: closing failed: ${error instanceof Error ? error.message : String(error)}`);
          done(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

if (require.main === module) runCli(emulatorsCli, emulators);
