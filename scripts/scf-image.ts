/**
 * Serves the recorder the way an SCF image function runs it, from source: POST /event-invoke with
 * the event as the body, X-Scf-* headers for the request id, timeout and the role's keys
 * (functions/scf-record/image-server.ts). `npm run scf:image -- --help`.
 */
import { createRecordHandler } from '../functions/scf-record';
import { EVENT_INVOKE_PATH, SCF_IMAGE_PORT, serveUntilTerminated, startImageServer } from '../functions/scf-record/image-server';
import { readConfig } from '../shared/config';
import { createLogger } from '../shared/log';
import { defineCli, listenError, portNumber, runCli, type CliValues } from './lib/cli';
import { LOCAL_RECORD_OPTIONS, localRecordDependencies } from './lib/scf-local';

export const scfImageCli = defineCli({
  name: 'scf:image',
  summary: 'Serves the scf-record handler from source as an SCF image function runs it: POST /event-invoke, X-Scf-* headers.',
  usage: '[--port PORT] [--host HOST] [--room sim:@SCENARIO] [--local-bucket-root DIR]',
  options: {
    port: { type: 'string', placeholder: 'PORT', default: String(SCF_IMAGE_PORT), description: 'port to listen on (0: any free port, printed on start)' },
    host: { type: 'string', placeholder: 'HOST', default: '127.0.0.1', description: 'interface to listen on (the built image server listens on every one, as SCF needs)' },
    ...LOCAL_RECORD_OPTIONS,
  },
  notes: [
    'X-Scf-Request-Id, X-Scf-Timeout (ms) and X-Scf-Secret-Id / X-Scf-Secret-Key / X-Scf-Session-Token are read as SCF sends\n' +
      'them; without the keys, TENCENTCLOUD_* from this environment are used. Ctrl-C or SIGTERM stops accepting, lets a\n' +
      'running recording stop, finalise and answer, then exits.',
  ],
  examples: [
    'npm run scf:image -- --port 9000 --room sim:@local-output/scenario.json --local-bucket-root ./local-output',
    "curl -X POST http://127.0.0.1:9000/event-invoke -H 'X-Scf-Request-Id: local-1' -d @events/scf-record.json",
  ],
  exitCodes: [
    [0, 'stopped by Ctrl-C or SIGTERM'],
    [1, 'the server failed'],
    [2, 'a command-line mistake, or the port is busy'],
  ],
});

export async function scfImage(values: CliValues<typeof scfImageCli.options>): Promise<number> {
  const port = portNumber('port', values.port);
  const logger = createLogger({ requestId: 'image-server', level: readConfig(process.env).logLevel, fields: { fn: 'scf-record' } });
  const handler = createRecordHandler(localRecordDependencies({ room: values.room, localBucketRoot: values['local-bucket-root'] }));
  const image = await startImageServer({ handler, port, host: values.host, logger }).catch((error: unknown) => {
    throw listenError(error, port);
  });
  process.stderr.write(`scf:image listening on http://${values.host}:${image.port}${EVENT_INVOKE_PATH} (POST an event; X-Scf-* headers as SCF sends them)\n`);
  return new Promise<number>((exit) => serveUntilTerminated(image, { logger, exit }));
}

if (require.main === module) runCli(scfImageCli, scfImage);
