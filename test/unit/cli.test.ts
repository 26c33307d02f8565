/**
 * The shared command-line module (scripts/lib/cli.ts), the local runners' exit-code rule
 * (scripts/lib/exit-codes.ts) and --room parsing (scripts/lib/scf-local.ts), without processes.
 * test/e2e/cli.e2e.test.ts runs the commands themselves.
 */
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { benchColdstartCli } from '../../scripts/bench-coldstart';
import { benchRecordCli } from '../../scripts/bench-record';
import { benchSnapshotCli } from '../../scripts/bench-snapshot';
import { benchSyncCli } from '../../scripts/bench-sync';
import { benchUploadCli } from '../../scripts/bench-upload';
import { buildCli } from '../../scripts/build';
import { DEMO_OUTPUT_MARKER, demoCli, prepareDemoOutput } from '../../scripts/demo';
import { emulatorsCli, EMULATOR_PORTS, exportLines } from '../../scripts/emulators';
import { fcInvokeCli } from '../../scripts/fc-invoke';
import {
  defineCli,
  formatHelp,
  listenError,
  parseCommandLine,
  portNumber,
  positiveNumber,
  readJsonArgument,
  UsageError,
  type CliOption,
  type CliSpec,
} from '../../scripts/lib/cli';
import { EXIT_FAILED, EXIT_INVALID, EXIT_OK, recordExitCode, snapshotExitCode } from '../../scripts/lib/exit-codes';
import { parseRoomArgument } from '../../scripts/lib/scf-local';
import { packageCli } from '../../scripts/package';
import { scfImageCli } from '../../scripts/scf-image';
import { scfInvokeCli } from '../../scripts/scf-invoke';
import { scfServeCli } from '../../scripts/scf-serve';

const spec = defineCli({
  name: 'demo:cmd',
  summary: 'Does a thing.',
  options: {
    event: { type: 'string', placeholder: 'JSON|@FILE', description: 'the event' },
    'local-bucket-root': { type: 'string', placeholder: 'DIR', description: 'a folder' },
    timeout: { type: 'string', placeholder: 'S', default: '600', description: 'seconds' },
    'no-ffmpeg': { type: 'boolean', description: 'leave it out' },
  },
  examples: ["npm run demo:cmd -- --event '{}'"],
  exitCodes: [
    [0, 'fine'],
    [2, 'your mistake'],
  ],
});

/** The thrown UsageError's message. */
function usageError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('parseCommandLine', () => {
  it('fills defaults, takes values in both spellings, and sees --help and -h', () => {
    expect(parseCommandLine(spec, [])).toEqual({ help: false, values: { event: undefined, 'local-bucket-root': undefined, timeout: '600', 'no-ffmpeg': false } });
    expect(parseCommandLine(spec, ['--event', '{"a":1}', '--timeout=5', '--no-ffmpeg']).values).toEqual({
      event: '{"a":1}',
      'local-bucket-root': undefined,
      timeout: '5',
      'no-ffmpeg': true,
    });
    expect(parseCommandLine(spec, ['--event', 'x', '--help']).help).toBe(true);
    expect(parseCommandLine(spec, ['-h']).help).toBe(true);
    // After --, nothing is an option.
    expect(() => parseCommandLine(spec, ['--', '--event'])).toThrow(/unexpected argument '--event'/);
  });

  it('names an unknown option, suggests the closest ones and lists the rest', () => {
    expect(usageError(() => parseCommandLine(spec, ['--evnt', 'x']))).toBe(
      'unknown option --evnt: did you mean --event? the options are --event, --local-bucket-root, --timeout, --no-ffmpeg, --help',
    );
    expect(usageError(() => parseCommandLine(spec, ['--local-bucket', 'x']))).toContain('did you mean --local-bucket-root?');
    expect(usageError(() => parseCommandLine(spec, ['--zzzzzz']))).toBe(
      'unknown option --zzzzzz: the options are --event, --local-bucket-root, --timeout, --no-ffmpeg, --help',
    );
    expect(usageError(() => parseCommandLine(spec, ['-e', 'x']))).toMatch(/^unknown option -e:/);
    // Names an object has by inheritance are not options.
    expect(usageError(() => parseCommandLine(spec, ['--toString', 'x']))).toMatch(/^unknown option --toString:/);
  });

  it('says how to give a missing value, also when the next option would be swallowed', () => {
    expect(usageError(() => parseCommandLine(spec, ['--event']))).toBe('--event needs a value: --event JSON|@FILE');
    expect(usageError(() => parseCommandLine(spec, ['--event', '--timeout', '5']))).toBe('--event needs a value: --event JSON|@FILE');
    // An explicit --event=--x is the user's word.
    expect(parseCommandLine(spec, ['--event=--timeout']).values.event).toBe('--timeout');
  });

  it('refuses stray arguments and values on flags', () => {
    expect(usageError(() => parseCommandLine(spec, ['{"a":1}']))).toBe("unexpected argument '{\"a\":1}': every value follows its option, e.g. --event JSON|@FILE");
    expect(usageError(() => parseCommandLine(spec, ['--no-ffmpeg=yes']))).toBe('--no-ffmpeg takes no value (got --no-ffmpeg=yes)');
  });
});

describe('formatHelp', () => {
  it('prints usage, every option with its placeholder and default, examples and exit codes', () => {
    const help = formatHelp(spec);
    expect(help).toContain('Usage: npm run demo:cmd -- [options]');
    expect(help).toMatch(/--event JSON\|@FILE\s+the event\n/);
    expect(help).toMatch(/--timeout S\s+seconds \(default: 600\)\n/);
    expect(help).toMatch(/--no-ffmpeg\s+leave it out\n/);
    expect(help).toMatch(/--help\s+print this help and exit\n/);
    expect(help).toContain("Examples:\n  npm run demo:cmd -- --event '{}'\n");
    expect(help).toContain('Exit codes:\n  0  fine\n  2  your mistake\n');
  });

  it('wraps long descriptions under their column', () => {
    const long = defineCli({ ...spec, options: { x: { type: 'string', description: 'word '.repeat(40).trim() } } });
    const lines = formatHelp(long).split('\n').filter((line) => line.includes('word'));
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.every((line) => line.length <= 110)).toBe(true);
    // Under the description column: two spaces, "--x VALUE", two spaces.
    expect(lines[0]).toMatch(/^  --x VALUE  word/);
    expect(lines[1]).toMatch(/^ {13}word/);
  });
});

/** Splits an example command line the way a POSIX shell would for these examples: quotes, and a trailing # comment. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) break;
    else word = (word ?? '') + c;
  }
  if (word !== undefined) words.push(word);
  return words;
}

describe('the commands\' own help', () => {
  const specs = [
    fcInvokeCli, scfInvokeCli, scfServeCli, scfImageCli, emulatorsCli, buildCli, packageCli, demoCli,
    benchSnapshotCli, benchRecordCli, benchUploadCli, benchColdstartCli, benchSyncCli,
  ] as Array<CliSpec<Record<string, CliOption>>>;

  it.each(specs.map((s) => [s.name, s] as const))('%s: every example parses, and the exit codes 0 and 2 are explained', (_name, cli) => {
    const help = formatHelp(cli);
    expect(help).toMatch(/\n {2}0 {2}\S/);
    expect(help).toMatch(/\n {2}2 {2}.*mistake/);
    const own = cli.examples.filter((example) => example.startsWith(`npm run ${cli.name} --`));
    expect(own.length).toBeGreaterThan(0);
    for (const example of own) expect(() => parseCommandLine(cli, shellWords(example).slice(4)), example).not.toThrow();
  });

  it('gives the emulators fixed ports 9101-9103 and the export lines the runners read', () => {
    expect(EMULATOR_PORTS).toEqual({ oss: 9101, cos: 9102, trtc: 9103 });
    expect(parseCommandLine(emulatorsCli, []).values).toMatchObject({ 'oss-port': '9101', 'cos-port': '9102', 'trtc-port': '9103' });
    const lines = exportLines({ oss: 'http://127.0.0.1:9101', cos: 'http://127.0.0.1:9102', trtc: 'http://127.0.0.1:9103' });
    const names = lines.map((line) => /^export ([A-Z_]+)=\S+$/.exec(line)?.[1]);
    expect(names).toEqual([
      'OSS_ENDPOINT',
      'ALIBABA_CLOUD_ACCESS_KEY_ID',
      'ALIBABA_CLOUD_ACCESS_KEY_SECRET',
      'COS_ENDPOINT',
      'TRTC_API_ENDPOINT',
      'TENCENTCLOUD_SECRETID',
      'TENCENTCLOUD_SECRETKEY',
      'CONTROL_SECRET',
    ]);
  });
});

describe('arguments with values', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-unit-'));
    await writeFile(join(dir, 'event.json'), '{"bucket":"b"}');
    await writeFile(join(dir, 'broken.json'), '{"bucket":');
    await writeFile(join(dir, 'scenario.json'), '{"anchors":[{"userId":"alice"}],"end":{"at":2,"reason":"dismissed"}}');
  });

  it('reads --event as JSON or from @file, and says what is wrong with either', () => {
    expect(readJsonArgument('event', '{"a":1}')).toEqual({ text: '{"a":1}', json: { a: 1 } });
    expect(readJsonArgument('event', `@${join(dir, 'event.json')}`).json).toEqual({ bucket: 'b' });
    expect(usageError(() => readJsonArgument('event', undefined))).toBe("missing --event: give --event '<json>' or --event @file.json");
    expect(usageError(() => readJsonArgument('event', '@'))).toContain('put the file name right after @');
    expect(usageError(() => readJsonArgument('event', `@${join(dir, 'nope.json')}`))).toBe(`--event @${join(dir, 'nope.json')}: no such file ${join(dir, 'nope.json')} in ${process.cwd()}`);
    expect(usageError(() => readJsonArgument('event', `@${dir}`))).toContain('is a directory');
    expect(usageError(() => readJsonArgument('event', `@${join(dir, 'broken.json')}`))).toMatch(/^--event @\S+broken\.json is not valid JSON: /);
    expect(usageError(() => readJsonArgument('event', '{"a":'))).toMatch(/^--event is not valid JSON: /);
    expect(usageError(() => readJsonArgument('event', 'events/fc-snapshot.json'))).toBe('--event is not JSON; to read the file use --event @events/fc-snapshot.json');
  });

  it('takes numbers and ports only in range', () => {
    expect(positiveNumber('timeout', '2.5')).toBe(2.5);
    for (const bad of ['0', '-1', 'abc', '', 'Infinity']) expect(() => positiveNumber('timeout', bad)).toThrow(UsageError);
    expect(portNumber('port', '0')).toBe(0);
    expect(portNumber('port', '9000')).toBe(9000);
    for (const bad of ['65536', '-1', '80.5', 'x', '']) expect(usageError(() => portNumber('port', bad))).toContain('--port must be a port number');
  });

  it('turns a busy or privileged port into one line naming the option, and leaves other errors alone', () => {
    const busy = listenError(Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:9000'), { code: 'EADDRINUSE' }), 9000, 'oss-port');
    expect(busy).toBeInstanceOf(UsageError);
    expect(busy.message).toBe('port 9000 is already in use: stop whatever listens there, or pick another with --oss-port');
    expect(listenError(Object.assign(new Error('x'), { code: 'EACCES' }), 80)).toBeInstanceOf(UsageError);
    const other = Object.assign(new Error('boom'), { code: 'EMFILE' });
    expect(listenError(other, 9000)).toBe(other);
  });

  it('reads --room sim:@file or sim:{json}, and says how to fix anything else', () => {
    expect(parseRoomArgument(`sim:@${join(dir, 'scenario.json')}`).anchors).toHaveLength(1);
    expect(parseRoomArgument('sim:{"anchors":[{"userId":"bob"}],"end":{"at":1,"reason":"kicked"}}').anchors[0]!.userId).toBe('bob');
    expect(usageError(() => parseRoomArgument('sim:scenario.json'))).toBe('--room sim:scenario.json is neither JSON nor a file reference: use --room sim:@scenario.json');
    expect(usageError(() => parseRoomArgument('scenario.json'))).toMatch(/^--room scenario\.json: the local rooms are the simulator, --room sim:@scenario\.json .* --room sidecar-sim:@scenario\.json/);
    expect(usageError(() => parseRoomArgument('sim:@missing.json'))).toContain('no such file missing.json');
    expect(usageError(() => parseRoomArgument('sim:{"anchors":'))).toMatch(/^--room sim:<json> is not valid JSON: /);
    expect(usageError(() => parseRoomArgument('sim:{"anchors":[{"name":"x"}]}'))).toMatch(/^--room sim:<json>: not a room scenario: .*anchors\.0\.name: unknown field/);
  });
});

describe('exit codes', () => {
  it('fc:invoke: 0 ok, 2 invalid, 1 partial or error', () => {
    expect(snapshotExitCode({ status: 'ok' })).toBe(EXIT_OK);
    expect(snapshotExitCode({ status: 'invalid' })).toBe(EXIT_INVALID);
    expect(snapshotExitCode({ status: 'partial' })).toBe(EXIT_FAILED);
    expect(snapshotExitCode({ status: 'error' })).toBe(EXIT_FAILED);
    expect(snapshotExitCode({})).toBe(EXIT_FAILED);
  });

  const stored = { Files: [{ UserId: 'a', Status: 1 }, { UserId: 'b', Status: 1 }] };
  const oneLost = { Files: [{ UserId: 'a', Status: 1 }, { UserId: 'b', Status: 0 }] };
  const invalid = { RequestId: 'r', Error: { Code: 'InvalidInput', Message: 'x' } };
  const http = (statusCode: number, result: unknown, base64 = false) => {
    const body = JSON.stringify(result);
    return { isBase64Encoded: base64, statusCode, headers: {}, body: base64 ? Buffer.from(body).toString('base64') : body };
  };

  it('scf:invoke, direct results: 0 all stored or a Stop done, 1 a file lost or an error, 2 invalid', () => {
    expect(recordExitCode(stored)).toBe(EXIT_OK);
    expect(recordExitCode({ Action: 'Stop', TrtcRequestId: 't' })).toBe(EXIT_OK);
    expect(recordExitCode(oneLost)).toBe(EXIT_FAILED);
    expect(recordExitCode({ Files: [], Message: 'nothing was recorded: no anchor was in the room while the recorder was' })).toBe(EXIT_FAILED);
    expect(recordExitCode({ ...stored, Error: { Code: 'TrtcSdkUnavailable' } })).toBe(EXIT_FAILED);
    expect(recordExitCode(invalid)).toBe(EXIT_INVALID);
    expect(recordExitCode(null)).toBe(EXIT_FAILED);
  });

  it('scf:invoke, API gateway answers: the same rule on the result inside body', () => {
    expect(recordExitCode(http(200, stored))).toBe(EXIT_OK);
    expect(recordExitCode(http(200, stored, true))).toBe(EXIT_OK);
    // The envelope alone has no Error and no Files: only the body tells.
    expect(recordExitCode(http(200, oneLost))).toBe(EXIT_FAILED);
    expect(recordExitCode(http(400, invalid))).toBe(EXIT_INVALID);
    expect(recordExitCode(http(500, { Error: { Code: 'MissingCredentials' } }))).toBe(EXIT_FAILED);
    expect(recordExitCode(http(401, { Error: { Code: 'Unauthorized' } }))).toBe(EXIT_FAILED);
    expect(recordExitCode(http(500, {}))).toBe(EXIT_FAILED);
    expect(recordExitCode({ statusCode: 200, headers: {}, body: 'not json' })).toBe(EXIT_FAILED);
  });
});

describe('the demo\'s output folder', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'demo-output-'));
  });
  const tree = async (dir: string) => (await readdir(dir, { recursive: true })).sort();

  it('takes a new or an empty folder, and marks it', async () => {
    await prepareDemoOutput(join(root, 'new', 'out'));
    await mkdir(join(root, 'empty'));
    await prepareDemoOutput(join(root, 'empty'));
    for (const dir of ['new/out', 'empty']) {
      expect(await tree(join(root, dir))).toEqual([DEMO_OUTPUT_MARKER]);
      expect(JSON.parse(await readFile(join(root, dir, DEMO_OUTPUT_MARKER), 'utf8')).entries).toContain('index.html');
    }
  });

  it('refuses a folder with anything the demo did not write, deleting nothing (so `--output .` never empties a checkout)', async () => {
    const dir = join(root, 'theirs');
    await mkdir(join(dir, 'src'), { recursive: true });
    await writeFile(join(dir, 'index.html'), 'their page');
    await expect(prepareDemoOutput(dir)).rejects.toThrow(new UsageError(
      `--output ${dir} is not empty and no demo wrote it (it has no ${DEMO_OUTPUT_MARKER}); the demo deletes only what it wrote itself: give a new or empty folder, e.g. --output local-output/demo`,
    ));
    expect(await tree(dir)).toEqual(['index.html', 'src']);
    await expect(prepareDemoOutput(join(dir, 'index.html'))).rejects.toThrow(/is a file: give a folder/);
  });

  it('in a folder an earlier demo wrote, replaces what that demo listed, and nothing else', async () => {
    const dir = join(root, 'earlier');
    await prepareDemoOutput(dir);
    await mkdir(join(dir, 'demo-bucket', 'snapshots'), { recursive: true });
    await writeFile(join(dir, 'demo-bucket', 'snapshots', 'old.jpg'), 'old');
    await writeFile(join(dir, 'index.html'), 'old page');
    await writeFile(join(dir, 'notes.txt'), 'mine');
    // A marker edited to reach outside the folder, or to the marker itself, is not followed.
    await writeFile(join(root, 'outside.txt'), 'keep');
    const marker = JSON.parse(await readFile(join(dir, DEMO_OUTPUT_MARKER), 'utf8'));
    await writeFile(join(dir, DEMO_OUTPUT_MARKER), JSON.stringify({ ...marker, entries: [...marker.entries, '../outside.txt', root, '.', 'a/../../outside.txt'] }));

    await prepareDemoOutput(dir);
    expect(await tree(dir)).toEqual([DEMO_OUTPUT_MARKER, 'notes.txt']);
    expect(await readFile(join(root, 'outside.txt'), 'utf8')).toBe('keep');
  });
});
