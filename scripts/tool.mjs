/**
 * `npm test`, `npm run test:unit` and `npm run typecheck` run vitest and tsc through here, so they
 * keep the contract of every other npm script (scripts/lib/cli.ts): `--help` prints the tool's own
 * usage (exit 0), and a mistake on the command line is one line, exit 2, never a stack trace. The
 * tool's own parser judges the arguments; then the tool runs in this process, as its bin would.
 *
 *   node scripts/tool.mjs vitest run [args…]        node scripts/tool.mjs tsc --noEmit [args…]
 *
 * Plain JavaScript, not TypeScript through tsx: tsx's loader hooks must not reach vitest's process.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const [tool, ...args] = process.argv.slice(2);
/** npm names the script it runs; run directly, the tool stands in. */
const script = process.env.npm_lifecycle_event ?? tool;

function commandLineMistake(message) {
  process.stderr.write(`${script}: ${message} (npm run ${script} -- --help)\n`);
  process.exit(2);
}

if (tool === 'vitest') {
  const bin = join(dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
  process.argv = [process.argv[0], bin, ...args];
  try {
    // vitest parses its arguments while its CLI module loads: a mistake rejects this import.
    await import(pathToFileURL(bin).href);
  } catch (error) {
    if (error?.name === 'CACError') commandLineMistake(error.message);
    throw error;
  }
} else if (tool === 'tsc') {
  const ts = require('typescript');
  const [mistake] = ts.parseCommandLine(args).errors;
  if (mistake) commandLineMistake(ts.flattenDiagnosticMessageText(mistake.messageText, ' '));
  process.argv = [process.argv[0], require.resolve('typescript/bin/tsc'), ...args];
  require('typescript/lib/tsc.js');
} else {
  commandLineMistake(`scripts/tool.mjs runs vitest or tsc, not ${tool}`);
}
