/**
 * Runs the real FC handler locally with an FC-like context: `npm run fc:invoke -- --help`.
 * Last stdout line: the result JSON; progress and logs go to stderr.
 */
import { randomUUID } from 'node:crypto';
import { createSnapshotHandler } from '../functions/fc-snapshot';
import { createLocalStore } from '../shared/storage/local';
import { defineCli, positiveNumber, printResult, progressPrinter, readJsonArgument, runCli, type CliValues } from './lib/cli';
import { snapshotExitCode } from './lib/exit-codes';

/** The region FC would run the function in when neither --region nor FC_REGION says otherwise. */
export const DEFAULT_FC_REGION = 'cn-hangzhou';

export const fcInvokeCli = defineCli({
  name: 'fc:invoke',
  summary: 'Runs the fc-snapshot handler (functions/fc-snapshot) locally, once, as FC would invoke it.',
  usage: "--event '<json>'|@FILE [--local-bucket-root DIR] [--region REGION] [--timeout S]",
  options: {
    event: { type: 'string', placeholder: "'<json>'|@FILE", description: 'the FC event: JSON, or @ and a file name (required)' },
    'local-bucket-root': { type: 'string', placeholder: 'DIR', description: 'store snapshots as files under DIR/<bucket>/ instead of OSS' },
    region: {
      type: 'string',
      placeholder: 'REGION',
      description: `the region FC runs the function in (FC_REGION): the bucket region when the event has none (default: $FC_REGION, else ${DEFAULT_FC_REGION})`,
    },
    timeout: { type: 'string', placeholder: 'S', default: '600', description: "the function's timeout in seconds; capture stops min(10 s, S/3) before it" },
  },
  notes: [
    'Without --local-bucket-root the snapshots go to OSS, at OSS_ENDPOINT when set (npm run emulators prints one),\n' +
      'else at the public endpoint oss-<region>.aliyuncs.com: a local run is outside FC\'s network, so the -internal\n' +
      'endpoint FC itself uses is never chosen. Keys: ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET\n' +
      '(/ ALIBABA_CLOUD_SECURITY_TOKEN). Ctrl-C or SIGTERM stops the capture, flushes uploads and prints the result.',
  ],
  examples: [
    'npm run fc:invoke -- --event \'{"rtmp_url":"rtmp://127.0.0.1:1935/live/s","bucket":"my-bucket"}\' --local-bucket-root ./local-output',
    'npm run fc:invoke -- --event @events/fc-snapshot.json --timeout 60',
  ],
  exitCodes: [
    [0, 'status ok: every snapshot and the manifest stored'],
    [1, 'status partial or error (see failed_keys / error), or the run failed'],
    [2, 'invalid event (status invalid) or a command-line mistake'],
  ],
});

export async function fcInvoke(values: CliValues<typeof fcInvokeCli.options>): Promise<number> {
  const { text } = readJsonArgument('event', values.event);
  const timeout = positiveNumber('timeout', values.timeout);
  const env = { ...process.env };
  const region = values.region ?? env.FC_REGION ?? env.ALIBABA_CLOUD_REGION ?? DEFAULT_FC_REGION;
  // The handler prefers FC_REGION over context.region, and takes a bucket in FC_REGION as reachable
  // through the -internal endpoint, which it is only from inside FC. The region goes in the
  // context instead, where it still fills in a missing event region.
  delete env.FC_REGION;
  delete env.ALIBABA_CLOUD_REGION;
  const root = values['local-bucket-root'];
  const handler = createSnapshotHandler({
    env,
    createStore: root ? (job) => createLocalStore({ root, bucket: job.bucket }) : undefined,
    onProgress: progressPrinter(),
    terminationSignals: ['SIGTERM', 'SIGINT'],
  });
  // FC hands the event over as a Buffer.
  const result = await handler(Buffer.from(text), {
    requestId: `local-${randomUUID()}`,
    function: { name: 'fc-snapshot', timeout },
    region,
  });
  printResult(result);
  return snapshotExitCode(result);
}

if (require.main === module) runCli(fcInvokeCli, fcInvoke);
