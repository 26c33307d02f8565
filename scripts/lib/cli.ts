import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** `--event '<json>'` or `--event @file.json`. */
export function readEventArgument(value: string | undefined): string {
  if (value === undefined) {
    process.stderr.write('missing --event \'<json>\' (or --event @file.json)\n');
    process.exit(2);
  }
  return value.startsWith('@') ? readFileSync(value.slice(1), 'utf8') : value;
}

export { parseArgs };

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
