/**
 * Loads a built function in a fresh Node process, the way FC and SCF do (`require` of index.js,
 * then a call of the exported handler), and reports what it took and which module files were
 * loaded before and after the call. Used by the descriptor tests (laziness, handler exports, a
 * smoke invocation) and by `npm run bench:coldstart` (require time).
 *
 * The child gets a clean environment (PATH plus what the caller passes: no NODE_OPTIONS, no
 * NODE_PATH), and should be given a bundle folder outside the repository, so that nothing the
 * package lacks can be found in the project's node_modules instead.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export interface ProbeRequest {
  /** The function folder (holds index.js). */
  dir: string;
  handlerExport: string;
  /** Also `require` these (relative to dir) after index.js, timed separately: what a first SDK use costs. */
  thenRequire?: string[];
  invoke?: {
    event: unknown;
    /** FC hands event functions their payload as a Buffer. */
    eventAsBuffer?: boolean;
    context: unknown;
  };
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface ProbeReport {
  /** Time for `require(index.js)`, in ms. */
  requireMs: number;
  /** Time for the `thenRequire` modules after it, in ms. */
  thenRequireMs?: number;
  handlerType: string;
  /** Module files in require.cache after requiring index.js; relative to dir when inside it. */
  loadedAfterRequire: string[];
  result?: unknown;
  loadedAfterInvoke?: string[];
  crash?: string;
  stderr: string;
}

const MARKER = '@@probe ';

const CHILD = `
const path = require('node:path');
const request = JSON.parse(process.argv[1]);
const rel = (file) => (file.startsWith(request.dir + path.sep) ? path.relative(request.dir, file) : file);
const loaded = () => Object.keys(require.cache).map(rel).sort();
const report = {};
const done = (code) => { process.stdout.write('\\n${MARKER}' + JSON.stringify(report) + '\\n', () => process.exit(code)); };
(() => { try {
  let t = process.hrtime.bigint();
  const mod = require(path.join(request.dir, 'index.js'));
  report.requireMs = Number(process.hrtime.bigint() - t) / 1e6;
  report.handlerType = typeof mod[request.handlerExport];
  report.loadedAfterRequire = loaded();
  if (request.thenRequire) {
    t = process.hrtime.bigint();
    for (const file of request.thenRequire) require(path.join(request.dir, file));
    report.thenRequireMs = Number(process.hrtime.bigint() - t) / 1e6;
  }
  if (!request.invoke) return done(0);
  const event = request.invoke.eventAsBuffer ? Buffer.from(JSON.stringify(request.invoke.event)) : request.invoke.event;
  Promise.resolve(mod[request.handlerExport](event, request.invoke.context)).then(
    (result) => { report.result = result; report.loadedAfterInvoke = loaded(); done(0); },
    (error) => { report.crash = String((error && error.stack) || error); done(1); },
  );
} catch (error) {
  report.crash = String((error && error.stack) || error);
  done(1);
} })();
`;

export function probeBundle(request: ProbeRequest): Promise<ProbeReport> {
  const { env, timeoutMs = 60_000, ...forChild } = request;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHILD, JSON.stringify(forChild)], {
      cwd: join(request.dir, '..'),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith(MARKER));
      if (!line) {
        reject(new Error(`probe of ${request.dir} ended (${signal ?? code}) without a report\nstdout: ${stdout}\nstderr: ${stderr}`));
        return;
      }
      resolve({ ...(JSON.parse(line.slice(MARKER.length)) as Omit<ProbeReport, 'stderr'>), stderr });
    });
  });
}
