/**
 * The deployable side: s.yaml and serverless.yml against the bundles `npm run build` makes (built
 * here, into a temporary folder outside the repository, by the same function), the console test
 * events against the handlers' validation, the environment the code reads against what is
 * documented and what the descriptors set, and the laziness of the cloud SDKs in the bundles.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { toSnapshotJob } from '../../functions/fc-snapshot/event';
import { parseRequest } from '../../functions/scf-record/event';
import { unwrapEvent } from '../../functions/scf-record/http-event';
import { buildFunctions, type FunctionBuild } from '../../scripts/build';
import { FUNCTIONS, LAZY_SDK_PACKAGES, ROOT, type FunctionName } from '../../scripts/lib/bundle-config';
import { probeBundle, type ProbeReport } from '../../scripts/lib/bundle-probe';
import { readConfig } from '../../shared/config';
import { LAYER_FFMPEG_PATH } from '../../shared/ffmpeg/binary';
import { startOssEmulator, type OssEmulator } from '../emulators/oss-emulator';
import { startTrtcApiEmulator, type TrtcApiEmulator } from '../emulators/trtc-api-emulator';

const readText = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const readEvent = (name: string): unknown => JSON.parse(readText(join('events', name)));

interface FcDescriptor {
  edition: string;
  vars: Record<string, string>;
  resources: Record<string, { component: string; props: Record<string, unknown> & { environmentVariables?: Record<string, string> } }>;
}
interface ScfDescriptor {
  component: string;
  inputs: Record<string, unknown> & { environment?: { variables?: Record<string, string> }; events?: Array<Record<string, { parameters: Record<string, unknown> }>> };
}

const fcDescriptor = parse(readText('s.yaml')) as FcDescriptor;
const scfDescriptor = parse(readText('serverless.yml')) as ScfDescriptor;
const fcProps = fcDescriptor.resources['fc-snapshot']!.props;

let work: string;
const builds = {} as Record<FunctionName, FunctionBuild>;
let fcWithoutFfmpeg: FunctionBuild;

beforeAll(async () => {
  // Outside the repository, so a module the package lacks cannot be found in the project's node_modules.
  work = await mkdtemp(join(tmpdir(), 'descriptors-'));
  for (const build of await buildFunctions({ outDir: join(work, 'dist'), ffmpeg: true })) builds[build.name] = build;
  fcWithoutFfmpeg = (await buildFunctions({ outDir: join(work, 'dist-no-ffmpeg'), functions: ['fc-snapshot'], ffmpeg: false }))[0]!;
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** `index.handler` → the bundle file and the export. */
function splitHandler(handler: unknown): { file: string; exportName: string } {
  expect(handler).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_]+$/);
  const [file, exportName] = (handler as string).split('.') as [string, string];
  return { file: `${file}.js`, exportName };
}

describe('s.yaml (Serverless Devs, fc3)', () => {
  it('parses, and describes a Node 20 function with a long timeout and no async retries', () => {
    expect(fcDescriptor.edition).toBe('3.0.0');
    expect(fcDescriptor.resources['fc-snapshot']!.component).toBe('fc3');
    expect(fcDescriptor.vars).toMatchObject({ region: expect.any(String), bucket: expect.any(String) });
    expect(fcProps).toMatchObject({ region: '${vars.region}', runtime: 'nodejs20', handler: 'index.handler', code: './dist/fc-snapshot' });
    expect(fcProps.description).toContain('${vars.bucket}');
    expect(fcProps.timeout).toBeGreaterThanOrEqual(3600);
    expect(fcProps.diskSize).toBe(512);
    expect(fcProps.memorySize).toEqual(expect.any(Number));
    expect(fcProps.role).toEqual(expect.any(String));
    expect(fcProps.asyncInvokeConfig).toMatchObject({ maxAsyncRetryAttempts: 0, maxAsyncEventAgeInSeconds: expect.any(Number) });
  });

  it('names a handler that the built bundle exports as a function', async () => {
    const build = builds[basename(fcProps.code as string) as FunctionName];
    const { file, exportName } = splitHandler(fcProps.handler);
    expect(existsSync(join(build.dir, file))).toBe(true);
    expect(exportName).toBe(FUNCTIONS['fc-snapshot'].handlerExport);
    expect((await probeBundle({ dir: build.dir, handlerExport: exportName })).handlerType).toBe('function');
  });
});

describe('serverless.yml (Tencent Serverless Framework, scf)', () => {
  const inputs = scfDescriptor.inputs;

  it('parses, and describes a Node 20 function with async execution, tracing and an API gateway trigger', () => {
    expect(scfDescriptor.component).toBe('scf');
    expect(inputs).toMatchObject({ runtime: 'Nodejs20.19', handler: 'index.main_handler', src: './dist/scf-record', asyncRunEnable: true, traceEnable: true });
    expect(inputs.timeout).toBeGreaterThan(900);
    expect(inputs.memorySize).toEqual(expect.any(Number));
    const apigw = inputs.events?.find((event) => 'apigw' in event)?.apigw;
    const endpoints = apigw?.parameters.endpoints as Array<{ method: string; function: { isIntegratedResponse: boolean } }>;
    expect(endpoints[0]).toMatchObject({ method: 'POST', function: { isIntegratedResponse: false } });
  });

  it('names a handler that the built bundle exports as a function', async () => {
    const build = builds[basename(inputs.src as string) as FunctionName];
    const { file, exportName } = splitHandler(inputs.handler);
    expect(existsSync(join(build.dir, file))).toBe(true);
    expect(exportName).toBe(FUNCTIONS['scf-record'].handlerExport);
    expect((await probeBundle({ dir: build.dir, handlerExport: exportName })).handlerType).toBe('function');
  });
});

describe('console test events', () => {
  const validators: Record<string, (event: unknown) => unknown> = {
    'fc-snapshot.json': (event) => toSnapshotJob(event, 'console-test', 'cn-hangzhou'),
    'scf-apigw-record.json': (event) => {
      const incoming = unwrapEvent(event);
      expect(incoming.viaHttp).toBe(true);
      return parseRequest(incoming.body);
    },
    'scf-record.json': (event) => parseRequest(unwrapEvent(event).body),
    'scf-record-controls.json': (event) => parseRequest(unwrapEvent(event).body),
    'scf-stop.json': (event) => parseRequest(unwrapEvent(event).body),
  };

  it('has a check for every event file', () => {
    expect(readdirSync(join(ROOT, 'events')).sort()).toEqual(Object.keys(validators).sort());
  });

  it('passes each handler\'s validation', () => {
    expect(validators['fc-snapshot.json']!(readEvent('fc-snapshot.json'))).toMatchObject({ bucket: 'my-bucket', region: 'cn-hangzhou' });
    expect(validators['scf-apigw-record.json']!(readEvent('scf-apigw-record.json'))).toMatchObject({ action: 'record' });
    expect(validators['scf-record.json']!(readEvent('scf-record.json'))).toMatchObject({ action: 'record' });
    expect(validators['scf-stop.json']!(readEvent('scf-stop.json'))).toMatchObject({ action: 'stop' });
    expect(validators['scf-record-controls.json']!(readEvent('scf-record-controls.json'))).toMatchObject({
      action: 'record',
      request: { MaxIdleTime: 30, SubscribeUserIds: ['teacher'], MaxMediaFileDuration: 60, SnapshotInterval: 10 },
    });
  });
});

describe('environment variables', () => {
  /** Every `nonEmpty('NAME')` in shared/config.ts, the one typed env reader. */
  const declared = [...readText('shared/config.ts').matchAll(/nonEmpty\('([A-Z0-9_]+)'\)/g)].map((m) => m[1]!);
  /** What readConfig actually reads, with everything unset and with everything set (the branches differ). */
  const observed = new Set<string>();
  // Set: '1' is a valid value for every variable but the log level (a malformed one throws).
  for (const set of [false, true]) {
    const value = (name: string) => (!set ? undefined : name === 'LOG_LEVEL' ? 'info' : '1');
    readConfig(new Proxy({}, { get: (_target, name) => (typeof name === 'string' ? (observed.add(name), value(name)) : undefined) }));
  }
  const read = new Set([...declared, ...observed]);

  it('are all read through nonEmpty() in readConfig, so the list above is complete', () => {
    expect([...observed].sort()).toEqual([...new Set(declared)].sort());
  });

  it('read by the code are each documented in README.md', () => {
    const docs = readText('README.md');
    const undocumented = [...read].filter((name) => !new RegExp(`\\b${name}\\b`).test(docs));
    expect(undocumented).toEqual([]);
  });

  it('set by the descriptors are each read by the code', () => {
    const set = [...Object.keys(fcProps.environmentVariables ?? {}), ...Object.keys(scfDescriptor.inputs.environment?.variables ?? {})];
    expect(set.length).toBeGreaterThan(0);
    expect(set.filter((name) => !read.has(name))).toEqual([]);
  });
});

describe('bundles: cloud SDKs are separate files, loaded on first use only', () => {
  const sdkInBundle = new RegExp(`node_modules/(${LAZY_SDK_PACKAGES.join('|')})/`);

  it('keeps every SDK out of index.js and ships only the SDKs each function uses', () => {
    for (const build of Object.values(builds)) expect(build.inputs.filter((input) => sdkInBundle.test(input))).toEqual([]);
    expect(builds['fc-snapshot'].vendored.map((v) => v.specifier)).toEqual(['ali-oss']);
    expect(builds['scf-record'].vendored.map((v) => v.specifier)).toEqual([
      'cos-nodejs-sdk-v5',
      'tencentcloud-sdk-nodejs/tencentcloud/common/exception/tencent_cloud_sdk_exception',
      'tencentcloud-sdk-nodejs/tencentcloud/services/trtc/v20190722/trtc_client',
    ]);
  });

  it('never puts COS or TRTC code in the snapshot package, nor ali-oss in the recorder\'s (esbuild metafiles)', () => {
    for (const build of Object.values(builds)) {
      const everything = [...build.inputs, ...build.vendored.flatMap((v) => v.inputs)];
      for (const pattern of FUNCTIONS[build.name].forbidden) expect(everything.filter((input) => pattern.test(input)), `${build.name} ${pattern}`).toEqual([]);
    }
    expect(builds['fc-snapshot'].unresolvedAtRuntime).not.toContain('trtc-electron-sdk');
    expect(builds['scf-record'].unresolvedAtRuntime).toContain('trtc-electron-sdk');
  });

  it('loads nothing but index.js on require', async () => {
    for (const build of Object.values(builds)) {
      const report = await probeBundle({ dir: build.dir, handlerExport: build.handlerExport });
      expect(report.loadedAfterRequire).toEqual(['index.js']);
    }
  });

  describe('smoke invocations of the built packages', () => {
    const ossCredentials = { accessKeyId: 'test-ak', accessKeySecret: 'test-secret-value' };
    const tencentCredentials = { secretId: 'AKIDtest', secretKey: 'test-secret-key' };
    let oss: OssEmulator;
    let trtc: TrtcApiEmulator;
    let scratch: string;

    beforeAll(async () => {
      [oss, trtc] = await Promise.all([startOssEmulator(ossCredentials), startTrtcApiEmulator(tencentCredentials)]);
      scratch = join(work, 'scratch');
      await mkdir(scratch, { recursive: true });
    });
    afterAll(async () => {
      await Promise.all([oss?.close(), trtc?.close()]);
    });

    const expectLoaded = (report: ProbeReport, expected: string[]) => {
      expect(report.crash, report.stderr).toBeUndefined();
      expect(report.loadedAfterRequire).toEqual(['index.js']);
      expect(report.loadedAfterInvoke).toEqual(['index.js', ...expected].sort());
    };

    /** The console event, pointed at a port nothing listens on: ffmpeg runs, finds no stream, the manifest is stored. */
    const unreachableSnapshotEvent = () => ({ ...(readEvent('fc-snapshot.json') as object), rtmp_url: 'rtmp://127.0.0.1:1/live/none', dst: 'smoke', connect_timeout: 1 });
    const fcContext = { requestId: 'smoke-fc', credentials: { ...ossCredentials }, function: { name: 'fc-snapshot', timeout: 60 }, region: 'cn-hangzhou' };

    it('fc-snapshot: runs the packaged bin/ffmpeg and stores through the vendored ali-oss', async () => {
      const report = await probeBundle({
        dir: builds['fc-snapshot'].dir,
        handlerExport: 'handler',
        invoke: { event: unreachableSnapshotEvent(), eventAsBuffer: true, context: fcContext },
        env: { OSS_ENDPOINT: oss.endpoint, MEDIA_TMP_DIR: scratch, LOG_LEVEL: 'error' },
      });
      expectLoaded(report, ['node_modules/ali-oss/index.js']);
      // SourceUnavailable: an ffmpeg ran and found nothing (a missing ffmpeg would be another error).
      expect(report.result).toMatchObject({ status: 'error', stop_reason: 'error', error: { code: 'SourceUnavailable' }, manifest_key: 'smoke/manifest.json' });
      expect(oss.getObject('my-bucket', 'smoke/manifest.json')).toBeDefined();
    });

    it.skipIf(existsSync(LAYER_FFMPEG_PATH))('fc-snapshot built with --no-ffmpeg says what is missing', async () => {
      const report = await probeBundle({
        dir: fcWithoutFfmpeg.dir,
        handlerExport: 'handler',
        invoke: { event: unreachableSnapshotEvent(), context: { ...fcContext, requestId: 'smoke-no-ffmpeg' } },
        env: { OSS_ENDPOINT: oss.endpoint, MEDIA_TMP_DIR: scratch, LOG_LEVEL: 'error' },
      });
      expect(report.result).toMatchObject({ status: 'error', error: { message: expect.stringContaining('no ffmpeg binary') } });
    });

    const scfEnv = () => ({
      TENCENTCLOUD_SECRETID: tencentCredentials.secretId,
      TENCENTCLOUD_SECRETKEY: tencentCredentials.secretKey,
      TRTC_API_ENDPOINT: trtc.endpoint,
      // Nothing listens there; the record smoke test never gets as far as uploading.
      COS_ENDPOINT: 'http://127.0.0.1:1',
      MEDIA_TMP_DIR: scratch,
      LOG_LEVEL: 'error',
      // The Electron room, which cannot load here: a Record fails at once (the liteav room has its own tests).
      TRTC_ROOM_SDK: 'electron',
    });
    const scfContext = { request_id: 'smoke-scf', time_limit_in_ms: 60_000 };

    it('scf-record Stop: calls RemoveUser through the vendored TRTC client, and nothing else', async () => {
      const report = await probeBundle({ dir: builds['scf-record'].dir, handlerExport: 'main_handler', invoke: { event: readEvent('scf-stop.json'), context: scfContext }, env: scfEnv() });
      expectLoaded(report, [
        'node_modules/tencentcloud-sdk-nodejs/tencentcloud/common/exception/tencent_cloud_sdk_exception.js',
        'node_modules/tencentcloud-sdk-nodejs/tencentcloud/services/trtc/v20190722/trtc_client.js',
      ]);
      expect(report.result).toMatchObject({ Action: 'Stop', RoomId: 1234, UserId: 'recorder_1234', TrtcRequestId: expect.any(String) });
      expect(trtc.calls).toEqual([expect.objectContaining({ action: 'RemoveUser', params: expect.objectContaining({ RoomId: 1234, UserIds: ['recorder_1234'] }) })]);
    });

    it('scf-record Record (console and API gateway events): loads the vendored COS SDK, then reports the missing trtc-electron-sdk', async () => {
      // Without the Callback: a smoke test posts nowhere.
      const { Callback: _callback, ...record } = readEvent('scf-record.json') as Record<string, unknown>;
      const gatewayEvent = { ...(readEvent('scf-apigw-record.json') as object), body: JSON.stringify(record) };
      const raw = await probeBundle({ dir: builds['scf-record'].dir, handlerExport: 'main_handler', invoke: { event: record, context: scfContext }, env: scfEnv() });
      expectLoaded(raw, ['node_modules/cos-nodejs-sdk-v5/index.js']);
      expect(raw.result).toMatchObject({ Error: { Code: 'TrtcSdkUnavailable' } });

      const viaGateway = await probeBundle({ dir: builds['scf-record'].dir, handlerExport: 'main_handler', invoke: { event: gatewayEvent, context: scfContext }, env: scfEnv() });
      expectLoaded(viaGateway, ['node_modules/cos-nodejs-sdk-v5/index.js']);
      const response = viaGateway.result as { statusCode: number; body: string };
      expect(response.statusCode).toEqual(expect.any(Number));
      expect(JSON.parse(response.body)).toMatchObject({ Error: { Code: 'TrtcSdkUnavailable' } });
    });
  });
});

/**
 * Relative file paths in a descriptor's text (comments included): tokens whose first segment is
 * `.`, `..`, `dist` or an entry of the repository's root or of the function package, paths with a
 * file extension, and bare document names (`README.md`). URLs and absolute, templated or
 * cloud-resource strings are left out.
 */
function mentionedPaths(text: string, topLevel: Set<string>): string[] {
  const found = new Set<string>();
  for (const raw of text.replace(/[a-z][a-z0-9+.-]*:\/\/\S+/gi, ' ').split(/\s+/)) {
    const token = raw.replace(/^[`'"([<]+/, '').replace(/[`'")\]>,.;:]+$/, '');
    if (!/[A-Za-z]/.test(token) || /[:${}=<>*]/.test(token) || /^[/~-]/.test(token)) continue;
    const first = token.split('/')[0]!;
    const pathLike = token.includes('/') && (first === '.' || first === '..' || first === 'dist' || topLevel.has(first));
    // A bare `index.js` or `manifest.json` names something in a package or a bucket; documents are files here.
    const fileLike = token.includes('/') ? /^[\w./-]+\.(md|json|ya?ml|js|ts|sh)$/.test(token) : /^[\w.-]+\.(md|ya?ml)$/.test(token);
    if (pathLike || fileLike) found.add(token);
  }
  return [...found].sort();
}

describe('paths the descriptors mention', () => {
  const topLevel = (build: FunctionBuild) => new Set([...readdirSync(ROOT), ...readdirSync(build.dir)]);
  /** Found in the repository, in the package (`bin/ffmpeg`, `index.js`), or, for `dist/…`, in the build output. */
  const exists = (path: string, build: FunctionBuild) => {
    const inDist = path.replace(/^\.\//, '').match(/^dist\/(.*)$/);
    if (inDist) return existsSync(join(work, 'dist', inDist[1]!));
    return existsSync(join(ROOT, path)) || existsSync(join(build.dir, path));
  };

  it('finds relative paths and leaves URLs, cloud resources and arithmetic alone', () => {
    const text = [
      '# Deploy guide: docs/deploy.md. Reference (devsapp/fc3 docs/zh/yaml/readme.md), https://github.com/x/y/blob/HEAD/docs/a.md',
      '  code: ./dist/fc-snapshot   # index.js and bin/ffmpeg; stops min(10 s, timeout/3) early; acs:ram::1:role/x; /opt/bin/ffmpeg',
      '# manifest.json in the bucket; see README.md, "Deploying"; Node.js 20',
    ].join('\n');
    expect(mentionedPaths(text, new Set(['docs', 'bin']))).toEqual(['./dist/fc-snapshot', 'README.md', 'bin/ffmpeg', 'docs/deploy.md', 'docs/zh/yaml/readme.md']);
  });

  it.each([
    ['s.yaml', 'fc-snapshot'],
    ['serverless.yml', 'scf-record'],
  ] as const)('%s names only files that exist', (descriptor, fn) => {
    const build = builds[fn];
    const paths = mentionedPaths(readText(descriptor), topLevel(build));
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.filter((path) => !exists(path, build))).toEqual([]);
  });
});
