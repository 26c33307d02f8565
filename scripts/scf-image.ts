/**
 * Serves the recorder the way an SCF image function runs it, from source: POST /event-invoke with
 * the event as the body, X-Scf-* headers for the request id, timeout and the role's keys
 * (functions/scf-record/image-server.ts).
 *   npm run scf:image -- [--port 9000] [--host 127.0.0.1] [--room sim:@scenario.json] [--local-bucket-root DIR]
 *   curl -X POST http://127.0.0.1:9000/event-invoke -H 'X-Scf-Request-Id: r1' -d @events/scf-record.json
 * `--port 0` picks a free port; the listening line on stderr names it. Ctrl-C or SIGTERM stops
 * accepting, lets a running invocation finish (a recording stops, finalises and uploads), then exits.
 */
import { createRecordHandler } from '../functions/scf-record';
import { EVENT_INVOKE_PATH, SCF_IMAGE_PORT, serveUntilTerminated, startImageServer } from '../functions/scf-record/image-server';
import { readConfig } from '../shared/config';
import { createLogger } from '../shared/log';
import { parseArgs } from './lib/cli';
import { localRecordDependencies } from './lib/scf-local';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: String(SCF_IMAGE_PORT) },
      host: { type: 'string', default: '127.0.0.1' },
      room: { type: 'string' },
      'local-bucket-root': { type: 'string' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number (got ${values.port})`);
  const logger = createLogger({ requestId: 'image-server', level: readConfig(process.env).logLevel, fields: { fn: 'scf-record' } });
  const handler = createRecordHandler(localRecordDependencies({ room: values.room, localBucketRoot: values['local-bucket-root'] }));
  const image = await startImageServer({ handler, port, host: values.host, logger });
  serveUntilTerminated(image, { logger });
  process.stderr.write(`scf:image listening on http://${values.host}:${image.port}${EVENT_INVOKE_PATH} (POST an event; X-Scf-* headers as SCF sends them)\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
