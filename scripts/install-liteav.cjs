'use strict';
/*
 * npm's postinstall for this project: Tencent's TRTC Linux server SDK (`liteav`, PyPI) into a
 * project-local virtual environment, .venv/ (git-ignored), pinned by version and sha256
 * (shared/sources/liteav/requirements.txt, pip --require-hashes). The recorder's production room
 * and its real-SDK tests use .venv/bin/python.
 *
 * It never fails `npm ci`: without Linux, Python 3.8+ with venv, or PyPI, it prints one line saying
 * what it skipped and why. The tests that need the SDK then fail, naming this step.
 * Plain JavaScript (not TypeScript): it runs before, and without, the dev dependencies.
 */
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join, relative } = require('node:path');

const ROOT = join(__dirname, '..');
const VENV = join(ROOT, '.venv');
const VENV_PYTHON = join(VENV, 'bin', 'python');
const REQUIREMENTS = join(ROOT, 'shared', 'sources', 'liteav', 'requirements.txt');
const VERSION = '13.2.0.24212';
/** Wheels exist for CPython 3.8 to 3.14. */
const PYTHON_RANGE = [
  [3, 8],
  [3, 14],
];

function say(line) {
  process.stdout.write(`liteav: ${line}\n`);
}

function run(command, args, timeoutMs) {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
  const output = `${result.stderr || ''}\n${result.stdout || ''}`.trim();
  const lastLine = output.split('\n').filter((line) => line.trim() !== '').pop() || (result.error ? result.error.message : '');
  return { ok: result.status === 0, lastLine: lastLine.trim() };
}

function installedVersion(python) {
  const probe = run(python, ['-c', "import importlib.metadata as m, liteav; print(m.version('liteav'))"], 30_000);
  return probe.ok ? probe.lastLine : undefined;
}

function main() {
  const skipped = (why) => say(`SKIPPED installing the TRTC room SDK (${why}); the real-SDK tests will fail until \`npm ci\` can install it.`);
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
    return skipped(`Tencent ships it for Linux x86_64/aarch64 only, this is ${process.platform}-${process.arch}`);
  }
  if (existsSync(VENV_PYTHON) && installedVersion(VENV_PYTHON) === VERSION) return say(`${VERSION} already in ${relative(ROOT, VENV)}/`);

  const version = run('python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], 30_000);
  if (!version.ok) return skipped('no python3 on PATH: install Python 3.8-3.14');
  const [major, minor] = version.lastLine.split('.').map(Number);
  const [[lowMajor, lowMinor], [highMajor, highMinor]] = PYTHON_RANGE;
  if (major * 100 + minor < lowMajor * 100 + lowMinor || major * 100 + minor > highMajor * 100 + highMinor) {
    return skipped(`python3 is ${version.lastLine}; liteav ${VERSION} has wheels for 3.8-3.14`);
  }
  const venv = run('python3', ['-m', 'venv', '--clear', VENV], 120_000);
  if (!venv.ok) return skipped(`python3 -m venv failed: ${venv.lastLine} (on Debian: apt-get install python3-venv)`);
  const pip = run(
    VENV_PYTHON,
    ['-m', 'pip', 'install', '--quiet', '--require-hashes', '--only-binary', ':all:', '--no-deps', '--retries', '1', '--timeout', '20', '-r', REQUIREMENTS],
    300_000,
  );
  if (!pip.ok) return skipped(`pip could not install liteav ${VERSION} from PyPI (offline, or no wheel for this Python): ${pip.lastLine}`);
  const installed = installedVersion(VENV_PYTHON);
  if (installed !== VERSION) return skipped(`liteav does not import after installing (${installed ?? 'import failed'})`);
  say(`${VERSION} installed into ${relative(ROOT, VENV)}/ (Python ${version.lastLine}, hashes checked)`);
}

try {
  main();
} catch (error) {
  say(`SKIPPED installing the TRTC room SDK (${error && error.message ? error.message : String(error)}); the real-SDK tests will fail until \`npm ci\` can install it.`);
}
