/**
 * Runs the real SCF handler locally.
 *   npm run scf:invoke -- --event '<json>'|@file [--room sim:@scenario.json] [--local-bucket-root DIR] [--timeout S]
 * Last stdout line: the result JSON. Exit 0 ok, 2 invalid input, 1 anything else.
 * COS_ENDPOINT and TRTC_API_ENDPOINT are honoured.
 */
import { randomUUID } from 'node:crypto';
import { createRecordHandler } from '../functions/scf-record';
import { parseArgs, printResult, readEventArgument } from './lib/cli';
import { localRecordDependencies } from './lib/scf-local';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      event: { type: 'string' },
      room: { type: 'string' },
      'local-bucket-root': { type: 'string' },
      timeout: { type: 'string', default: '900' },
    },
  });
  const event = readEventArgument(values.event);
  const handler = createRecordHandler(localRecordDependencies({ room: values.room, localBucketRoot: values['local-bucket-root'] }));
  const result = (await handler(event, { request_id: `local-${randomUUID()}`, time_limit_in_ms: Number(values.timeout) * 1000 })) as Record<string, unknown>;
  printResult(result);
  const error = result.Error as { Code?: string } | undefined;
  if (error?.Code === 'InvalidInput') return 2;
  const files = (result.Files as Array<{ Status: number }> | undefined) ?? [];
  return !error && files.every((file) => file.Status === 1) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`scf-invoke failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
