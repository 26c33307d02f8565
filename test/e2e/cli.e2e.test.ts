/**
 * The local commands as a user runs them: --help, one-line mistakes with exit 2 and no stack,
 * scf:invoke's exit code from the result inside an API gateway answer, and fc:invoke standing in
 * for FC's region.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnTracked } from '../support/child-processes';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a script the way `npm run <name> --` does, minus npm. */
async function run(script: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const child = spawnTracked(process.execPath, ['--import', 'tsx', `scripts/${script}`, ...args], {
    env: { ...process.env, LOG_LEVEL: 'error', ...env },
    stdout: 'capture',
  });
  const timer = setTimeout(() => void child.stop('SIGKILL'), 60_000);
  const code = await child.exited;
  clearTimeout(timer);
  return { code, stdout: child.stdout(), stderr: child.output() };
}

const lastJson = (text: string) => JSON.parse(text.trim().split('\n').pop()!) as Record<string, unknown>;

/** One line on stderr, nothing that looks like a stack or node's own error. */
function expectOneLine(result: Run, code: number, pattern: RegExp): void {
  expect(result.code, result.stderr).toBe(code);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/TypeError|ERR_|\n\s+at |Unhandled/);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cli-e2e-'));
  await writeFile(join(dir, 'scenario.json'), JSON.stringify({ anchors: [{ userId: 'alice' }], end: { at: 1, reason: 'dismissed' } }));
  await writeFile(join(dir, 'not-a-folder'), 'a file where the bucket folder should be');
});

/** Runs `npm run <script> -- <args>` as a user would (npm's own header goes to stdout). */
async function npmRun(script: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const child = spawnTracked('npm', ['run', script, '--', ...args], { env: { ...process.env, LOG_LEVEL: 'error', ...env }, stdout: 'capture' });
  const timer = setTimeout(() => void child.stop('SIGKILL'), 60_000);
  const code = await child.exited;
  clearTimeout(timer);
  return { code, stdout: child.stdout(), stderr: child.output() };
}

/** npm's lifecycle hooks (postinstall: the liteav set-up) run on install, not as commands people type. */
const LIFECYCLE_HOOKS = new Set(['preinstall', 'install', 'postinstall', 'prepare']);
const npmScripts = Object.fromEntries(
  Object.entries((JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts).filter(([script]) => !LIFECYCLE_HOOKS.has(script)),
);
/** Ours go through scripts/lib/cli.ts; test, test:unit and typecheck are vitest's and tsc's own, through scripts/tool.mjs. */
const ours = (script: string) => npmScripts[script]!.startsWith('tsx scripts/');
it('runs every npm script through scripts/lib/cli.ts or scripts/tool.mjs', () => {
  for (const [script, command] of Object.entries(npmScripts)) expect(command, script).toMatch(/^(tsx scripts\/[\w-]+\.ts|node scripts\/tool\.mjs (vitest|tsc))( |$)/);
});

describe.concurrent('every npm script in package.json', () => {
  it.for(Object.keys(npmScripts))('%s --help: usage on stdout, exit 0, nothing started', async (script, { onTestFinished }) => {
    // Whatever a script does first (a work dir, a cache, a log line) shows in its own TMPDIR or on stderr.
    const tmp = await mkdtemp(join(tmpdir(), 'help-'));
    // The context's hook: the global one may attach to another of these concurrent tests, which then removes this dir mid-run.
    onTestFinished(() => rm(tmp, { recursive: true, force: true }));
    const result = await npmRun(script, ['--help'], { TMPDIR: tmp });
    expect(result.code, result.stderr).toBe(0);
    // vitest's help and tsc's each have their own headings.
    const tool = /^node scripts\/tool\.mjs (\w+)/.exec(npmScripts[script]!)?.[1];
    if (tool) expect(result.stdout).toMatch(tool === 'tsc' ? /\nCOMMON COMMANDS\n[\s\S]*\nCOMMAND LINE FLAGS\n/ : /\nUsage:\n {2}\$ vitest /);
    if (ours(script)) {
      expect(result.stdout).toContain(`Usage: npm run ${script} -- `);
      expect(result.stdout).toMatch(/\nOptions:\n[\s\S]*\nExamples:\n[\s\S]*\nExit codes:\n {2}0 [\s\S]*\n {2}2 {2}.*mistake/);
    }
    expect(result.stderr).toBe('');
    // tsx keeps its compile cache in the temp dir.
    expect((await readdir(tmp)).filter((name) => !name.startsWith('tsx-'))).toEqual([]);
  });

  it.each(Object.keys(npmScripts))('%s --evnt x: one line naming the option and where help is, exit 2', async (script) => {
    const escaped = script.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const result = await npmRun(script, ['--evnt', 'x']);
    expectOneLine(result, 2, new RegExp(`^${escaped}: .*--evnt.* \\(npm run ${escaped} -- --help\\)$`));
    if (ours(script)) expect(result.stderr).toMatch(/: unknown option --evnt: .*the options are /);
  });
});

describe.concurrent('mistakes: one line, exit 2', () => {
  it('fc:invoke: a missing @file, and invalid JSON', async () => {
    expectOneLine(await run('fc-invoke.ts', ['--event', '@no-such-event.json']), 2, /^fc:invoke: --event @no-such-event\.json: no such file no-such-event\.json in /);
    const invalid = await run('fc-invoke.ts', ['--event', '{"rtmp_url":']);
    expectOneLine(invalid, 2, /^fc:invoke: --event is not valid JSON: /);
    expect(invalid.stdout).toBe('');
  });

  it('demo: --output . (a checkout the demo did not write) is refused, nothing deleted', async () => {
    const result = await run('demo.ts', ['--output', '.']);
    expectOneLine(result, 2, new RegExp(`^demo: --output ${process.cwd()} is not empty and no demo wrote it .*give a new or empty folder`));
    expect(existsSync('package.json')).toBe(true);
  });

  it('scf:invoke: --room sim:scenario.json without the @', async () => {
    expectOneLine(
      await run('scf-invoke.ts', ['--event', '@events/scf-record.json', '--room', 'sim:scenario.json']),
      2,
      /^scf:invoke: --room sim:scenario\.json is neither JSON nor a file reference: use --room sim:@scenario\.json /,
    );
  });

  describe('scf:serve and scf:image on a busy port', () => {
    let blocker: Server;
    let port: number;
    beforeAll(async () => {
      blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      port = (blocker.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

    it.each([
      ['scf-serve.ts', 'scf:serve'],
      ['scf-image.ts', 'scf:image'],
    ])('%s says which port is busy and how to choose another', async (script, name) => {
      expectOneLine(await run(script, ['--port', String(port)]), 2, new RegExp(`^${name}: port ${port} is already in use: stop whatever listens there, or pick another with --port `));
    });
  });
});

describe('scf:invoke exit codes follow the result', () => {
  const gatewayEvent = (body: unknown) => JSON.stringify({ httpMethod: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), isBase64Encoded: false });
  const request = { SdkAppId: 1400000001, RoomId: 77, UserId: 'recorder_77', UserSig: 'sig', Mode: '00', CosConfig: { Region: 'ap-guangzhou', Bucket: 'media-1250000000', Path: '/cli/' } };

  it('2 for an invalid request inside an API gateway event (a 400)', async () => {
    const result = await run('scf-invoke.ts', ['--event', gatewayEvent({ ...request, UserId: undefined })]);
    expect(result.code).toBe(2);
    const answer = lastJson(result.stdout);
    expect(answer.statusCode).toBe(400);
    expect(JSON.parse(answer.body as string)).toMatchObject({ Error: { Code: 'InvalidInput', Fields: [{ field: 'UserId', message: 'is required (a string)' }] } });
  });

  it('0 when every file is stored, through an API gateway event', async () => {
    const result = await run('scf-invoke.ts', ['--event', gatewayEvent(request), '--room', `sim:@${join(dir, 'scenario.json')}`, '--local-bucket-root', join(dir, 'bucket')], {
      MEDIA_TMP_DIR: dir,
    });
    const answer = lastJson(result.stdout);
    expect(result.code, result.stderr).toBe(0);
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body as string)).toMatchObject({ Files: [{ UserId: 'alice', Status: 1 }] });
  });

  it('1 when nothing was recorded (no subscribed anchor came), with the reason in Message', async () => {
    const result = await run('scf-invoke.ts', ['--event', gatewayEvent({ ...request, SubscribeUserIds: ['bob'] }), '--room', `sim:@${join(dir, 'scenario.json')}`, '--local-bucket-root', join(dir, 'bucket')], {
      MEDIA_TMP_DIR: dir,
    });
    const answer = lastJson(result.stdout);
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body as string)).toMatchObject({ Files: [], Message: 'nothing was recorded: no anchor in the room (alice) is in SubscribeUserIds (bob)' });
    expect(result.code).toBe(1);
  });

  it('1 when a file could not be stored (Status 0), though the answer is a 200', async () => {
    const result = await run('scf-invoke.ts', ['--event', gatewayEvent(request), '--room', `sim:@${join(dir, 'scenario.json')}`, '--local-bucket-root', join(dir, 'not-a-folder')], {
      MEDIA_TMP_DIR: dir,
    });
    const answer = lastJson(result.stdout);
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body as string)).toMatchObject({ Files: [{ UserId: 'alice', Status: 0 }] });
    expect(result.code).toBe(1);
  });
});

describe('fc:invoke stands in for FC\'s region', () => {
  // Nothing listens there: the run ends at once with SourceUnavailable (exit 1), but the event passed.
  const minimal = JSON.stringify({ rtmp_url: 'rtmp://127.0.0.1:1/live/none', bucket: 'local-bucket', connect_timeout: 1 });
  const regionOf = async (args: string[], env: Record<string, string | undefined> = {}) => {
    const result = await run('fc-invoke.ts', ['--event', minimal, '--local-bucket-root', join(dir, 'fc'), ...args], { MEDIA_TMP_DIR: dir, ...env });
    const answer = lastJson(result.stdout);
    expect(answer.status, result.stdout).not.toBe('invalid');
    expect(result.code).toBe(1);
    return answer.region;
  };

  it('defaults to cn-hangzhou, takes FC_REGION from the shell, and --region over both', async () => {
    expect(await regionOf([], { FC_REGION: undefined, ALIBABA_CLOUD_REGION: undefined })).toBe('cn-hangzhou');
    expect(await regionOf([], { FC_REGION: 'cn-beijing' })).toBe('cn-beijing');
    expect(await regionOf(['--region', 'cn-shanghai'], { FC_REGION: 'cn-beijing' })).toBe('cn-shanghai');
  });
});
