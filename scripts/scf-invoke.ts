/**
 * Runs the real SCF handler locally, once: `npm run scf:invoke -- --help`.
 * Last stdout line: the handler's answer as JSON; logs go to stderr.
 */
import { randomUUID } from 'node:crypto';
import { createRecordHandler } from '../functions/scf-record';
import { defineCli, positiveNumber, printResult, readJsonArgument, runCli, type CliValues } from './lib/cli';
import { recordExitCode } from './lib/exit-codes';
import { LOCAL_RECORD_OPTIONS, localRecordDependencies } from './lib/scf-local';

export const scfInvokeCli = defineCli({
  name: 'scf:invoke',
  summary: 'Runs the scf-record handler (functions/scf-record) locally, once, as SCF would invoke it.',
  usage: "--event '<json>'|@FILE [--room sim:@SCENARIO] [--local-bucket-root DIR] [--timeout S]",
  options: {
    event: {
      type: 'string',
      placeholder: "'<json>'|@FILE",
      description: 'a Record or Stop request, or an API gateway event carrying one (events/*.json); required',
    },
    ...LOCAL_RECORD_OPTIONS,
    timeout: { type: 'string', placeholder: 'S', default: '900', description: "the function's timeout in seconds; recording stops min(60 s, S/3) before it" },
  },
  notes: [
    'A scenario: {"anchors":[{"userId":"alice","joinAt":0,"leaveAt":null},{"userId":"bob","joinAt":2,"leaveAt":6}],\n' +
      '"end":{"at":10,"reason":"dismissed"}}. Without --local-bucket-root recordings go to COS, at COS_ENDPOINT when set\n' +
      '(npm run emulators prints one), with TENCENTCLOUD_SECRETID / TENCENTCLOUD_SECRETKEY unless CosConfig has keys.\n' +
      'Stop calls TRTC RemoveUser at TRTC_API_ENDPOINT when set; at the emulator, that kicks the recorder\'s simulated\n' +
      'room in whichever local runner records it (StopReason kicked). For an API gateway event the answer is\n' +
      '{statusCode, body}; the exit code follows the result inside body.',
  ],
  examples: [
    'npm run scf:invoke -- --event @events/scf-record.json --room sim:@local-output/scenario.json --local-bucket-root ./local-output',
    'npm run scf:invoke -- --event @events/scf-apigw-record.json --room sim:\'{"anchors":[{"userId":"alice"}],"end":{"at":5,"reason":"dismissed"}}\'',
    'npm run scf:invoke -- --event @events/scf-stop.json      # RemoveUser at TRTC_API_ENDPOINT',
  ],
  exitCodes: [
    [0, 'every file stored (Files[].Status 1), or the Stop went through'],
    [1, 'a file not stored (Status 0), nothing recorded (Files empty: Message says why), an Error in the result (other than InvalidInput), or the run failed'],
    [2, 'invalid request (Error.Code InvalidInput, a 400 over API gateway) or a command-line mistake'],
  ],
});

export async function scfInvoke(values: CliValues<typeof scfInvokeCli.options>): Promise<number> {
  const { json } = readJsonArgument('event', values.event);
  const timeout = positiveNumber('timeout', values.timeout);
  const handler = createRecordHandler(localRecordDependencies({ room: values.room, localBucketRoot: values['local-bucket-root'] }));
  // SCF hands a JSON event over already parsed.
  const answer = await handler(json, { request_id: `local-${randomUUID()}`, time_limit_in_ms: timeout * 1000 });
  printResult(answer);
  return recordExitCode(answer);
}

if (require.main === module) runCli(scfInvokeCli, scfInvoke);
