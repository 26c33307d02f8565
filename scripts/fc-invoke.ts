/**
 * Runs the real FC handler locally with an FC-like context.
 *   npm run fc:invoke -- --event '<json>' [--local-bucket-root DIR] [--timeout S]
 * Last stdout line: the result JSON. Exit 0 ok, 2 invalid input, 1 anything else.
 */
import { randomUUID } from 'node:crypto';
import { createSnapshotHandler } from '../functions/fc-snapshot';
import { createLocalStore } from '../shared/storage/local';
import { parseArgs, printResult, progressPrinter, readEventArgument } from './lib/cli';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      event: { type: 'string' },
      'local-bucket-root': { type: 'string' },
      timeout: { type: 'string', default: '600' },
    },
  });
  const event = readEventArgument(values.event);
  const root = values['local-bucket-root'];
  const handler = createSnapshotHandler({
    createStore: root ? (job) => createLocalStore({ root, bucket: job.bucket }) : undefined,
    onProgress: progressPrinter(),
    terminationSignals: ['SIGTERM', 'SIGINT'],
  });
  const result = await handler(Buffer.from(event), {
    requestId: `local-${randomUUID()}`,
    function: { name: 'fc-snapshot', timeout: Number(values.timeout) },
    region: process.env.FC_REGION,
  });
  printResult(result);
  if (result.status === 'invalid') return 2;
  return result.status === 'ok' ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`fc-invoke failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
