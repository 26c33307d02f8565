/**
 * What every local command shares: options declared once (parsing, `--help` and checks come from
 * the same table), and user mistakes reported as one line naming the fix, exit 2, never a stack.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** A mistake on the command line: reported as one line, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CliOption {
  type: 'string' | 'boolean';
  /** Placeholder shown in the help, e.g. `JSON|@FILE`. */
  placeholder?: string;
  default?: string;
  description: string;
}

export interface CliSpec<O extends Record<string, CliOption>> {
  /** `fc:invoke`: the npm script, used in messages and the help. */
  name: string;
  summary: string;
  /** Extra usage text after the option list, e.g. `[--event JSON|@FILE]`; default: built from the options. */
  usage?: string;
  options: O;
  /** Paragraphs after the options. */
  notes?: string[];
  examples: string[];
  exitCodes: Array<[number, string]>;
}

export type CliValues<O extends Record<string, CliOption>> = {
  [K in keyof O]: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { default: string } ? string : string | undefined;
};

/** Identity, for type inference of the option table. */
export function defineCli<const O extends Record<string, CliOption>>(spec: CliSpec<O>): CliSpec<O> {
  return spec;
}

const HELP_OPTION: CliOption = { type: 'boolean', description: 'print this help and exit' };

function allOptions(spec: CliSpec<Record<string, CliOption>>): Record<string, CliOption> {
  return { ...spec.options, help: HELP_OPTION };
}

export function formatHelp<O extends Record<string, CliOption>>(spec: CliSpec<O>): string {
  const options = allOptions(spec);
  const left = (name: string, option: CliOption) => `--${name}${option.type === 'string' ? ` ${option.placeholder ?? 'VALUE'}` : ''}`;
  const width = Math.max(...Object.entries(options).map(([name, option]) => left(name, option).length));
  const lines = [`${spec.summary}`, '', `Usage: npm run ${spec.name} -- ${spec.usage ?? '[options]'}`, '', 'Options:'];
  for (const [name, option] of Object.entries(options)) {
    const defaultText = option.default !== undefined ? ` (default: ${option.default})` : '';
    const text = wrap(`${option.description}${defaultText}`, HELP_WIDTH - width - 4);
    lines.push(`  ${left(name, option).padEnd(width)}  ${text[0]}`, ...text.slice(1).map((line) => `${' '.repeat(width + 4)}${line}`));
  }
  for (const note of spec.notes ?? []) lines.push('', note);
  lines.push('', 'Examples:', ...spec.examples.map((example) => `  ${example}`));
  lines.push('', 'Exit codes:', ...spec.exitCodes.map(([code, meaning]) => `  ${code}  ${meaning}`));
  return lines.join('\n') + '\n';
}

const HELP_WIDTH = 110;

/** Words into lines of at most `width` characters (a longer word gets a line of its own). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

/** Parses `argv` against the spec; `help` is true when --help (or -h) was given. Throws UsageError. */
export function parseCommandLine<O extends Record<string, CliOption>>(spec: CliSpec<O>, argv: string[]): { help: boolean; values: CliValues<O> } {
  const options = allOptions(spec);
  // Not strict: node's own errors are TypeErrors with a stack and advice about positionals; each
  // token is checked below instead, to say what to type.
  const { tokens } = parseArgs({ args: argv, options: Object.fromEntries(Object.entries(options).map(([name, o]) => [name, { type: o.type }])), strict: false, tokens: true, allowPositionals: true });
  const values: Record<string, string | boolean | undefined> = {};
  for (const [name, option] of Object.entries(spec.options)) values[name] = option.type === 'boolean' ? false : option.default;
  let help = false;
  for (const token of tokens) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') throw new UsageError(`unexpected argument '${token.value}': every value follows its option, e.g. ${exampleOption(spec)}`);
    if (token.rawName === '-h') {
      help = true;
      continue;
    }
    const option = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (option === undefined || !token.rawName.startsWith('--')) throw new UsageError(unknownOptionMessage(token.rawName, Object.keys(options)));
    if (token.name === 'help') {
      help = true;
      continue;
    }
    if (option.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`--${token.name} takes no value (got --${token.name}=${token.value})`);
      values[token.name] = true;
      continue;
    }
    // `--event --room …` would take "--room" as the event: almost always a forgotten value.
    const swallowedOption = token.value !== undefined && !token.inlineValue && token.value.startsWith('--') && Object.hasOwn(options, token.value.slice(2).split('=')[0]!);
    if (token.value === undefined || swallowedOption) throw new UsageError(`--${token.name} needs a value: --${token.name} ${option.placeholder ?? 'VALUE'}`);
    values[token.name] = token.value;
  }
  return { help, values: values as CliValues<O> };
}

function exampleOption(spec: CliSpec<Record<string, CliOption>>): string {
  const [name, option] = Object.entries(spec.options).find(([, o]) => o.type === 'string') ?? [];
  return name ? `--${name} ${option!.placeholder ?? 'VALUE'}` : '--help';
}

function unknownOptionMessage(raw: string, known: string[]): string {
  const given = raw.replace(/^-+/, '');
  const close = known.filter((name) => name.startsWith(given) || given.startsWith(name) || editDistance(name, given) <= 2);
  const hint = close.length ? `did you mean ${close.map((name) => `--${name}`).join(' or ')}? ` : '';
  return `unknown option ${raw}: ${hint}the options are ${known.map((name) => `--${name}`).join(', ')}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * Runs a command: `--help` prints the help (exit 0); a UsageError is one line on stderr (exit 2);
 * any other error one line (exit 1; the stack too with LOG_LEVEL=debug); otherwise main's exit code.
 */
export function runCli<O extends Record<string, CliOption>>(spec: CliSpec<O>, main: (values: CliValues<O>) => Promise<number>, argv = process.argv.slice(2)): void {
  const fail = (error: unknown): never => {
    const usage = error instanceof UsageError;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(usage ? `${spec.name}: ${message} (npm run ${spec.name} -- --help)\n` : `${spec.name} failed: ${message}\n`);
    if (!usage && process.env.LOG_LEVEL === 'debug' && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exit(usage ? 2 : 1);
  };
  let parsed: { help: boolean; values: CliValues<O> };
  try {
    parsed = parseCommandLine(spec, argv);
  } catch (error) {
    return fail(error);
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(spec));
    process.exit(0);
  }
  main(parsed.values).then((code) => process.exit(code), fail);
}

/**
 * `--event '<json>'` or `--event @file.json`, parsed. Every way this can go wrong is a UsageError
 * that says what to type instead.
 */
export function readJsonArgument(option: string, value: string | undefined): { text: string; json: unknown } {
  if (value === undefined) throw new UsageError(`missing --${option}: give --${option} '<json>' or --${option} @file.json`);
  let text = value;
  let source = `--${option}`;
  if (value.startsWith('@')) {
    const path = value.slice(1);
    if (path === '') throw new UsageError(`--${option} @: put the file name right after @, e.g. --${option} @events/file.json`);
    source = `--${option} @${path}`;
    text = readArgumentFile(source, path);
  }
  try {
    return { text, json: JSON.parse(text) };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // A bare file name: the @ was forgotten.
    if (!value.startsWith('@') && /^[^\s{["]+$/.test(value)) throw new UsageError(`${source} is not JSON; to read the file use --${option} @${value}`);
    throw new UsageError(`${source} is not valid JSON: ${reason}`);
  }
}

/** A file named on the command line, read whole; a missing or unreadable file is a UsageError. */
export function readArgumentFile(source: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`${source}: no such file ${path} in ${process.cwd()}`);
    if (code === 'EISDIR') throw new UsageError(`${source}: ${path} is a directory, not a file`);
    throw new UsageError(`${source}: cannot read ${path} (${code ?? String(error)})`);
  }
}

/** `--timeout 60` → 60; anything but a positive number is a UsageError. */
export function positiveNumber(option: string, value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0) throw new UsageError(`--${option} must be a positive number (got ${value})`);
  return number;
}

/** `--samples 15` → 15; anything but a whole number from 1 is a UsageError. */
export function positiveInteger(option: string, value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(number) || number < 1) throw new UsageError(`--${option} must be a whole number from 1 (got ${value})`);
  return number;
}

/** `--port 9000`; 0 means any free port. */
export function portNumber(option: string, value: string): number {
  const port = Number(value);
  if (value.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--${option} must be a port number, 0-65535 (got ${value})`);
  return port;
}

/** A listen() failure that is the user's to fix, as a UsageError; anything else unchanged. */
export function listenError(error: unknown, port: number, option = 'port'): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new UsageError(`port ${port} is already in use: stop whatever listens there, or pick another with --${option}`);
  if (code === 'EACCES') return new UsageError(`port ${port} needs privileges to listen on: pick one above 1023 with --${option}`);
  return error instanceof Error ? error : new Error(String(error));
}

/** The result is the last stdout line, so scripts can `tail -1 | jq`. */
export function printResult(result: unknown): void {
  process.stdout.write(JSON.stringify(result) + '\n');
}

export function progressPrinter(startedAt = Date.now()) {
  let last = '';
  return (p: { taken: number; uploaded: number; failed: number }) => {
    const line = `progress taken=${p.taken} uploaded=${p.uploaded} failed=${p.failed} elapsed=${((Date.now() - startedAt) / 1000).toFixed(1)}s`;
    if (line.split(' elapsed')[0] === last) return;
    last = line.split(' elapsed')[0]!;
    process.stderr.write(line + '\n');
  };
}
