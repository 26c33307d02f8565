/**
 * Serves the SCF handler over local HTTP the way the API gateway would: `npm run scf:serve -- --help`.
 * Every POST becomes an API-gateway event (method, path, headers, base64 body); the handler's
 * answer becomes the HTTP response.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRecordHandler } from '../functions/scf-record';
import { defineCli, listenError, portNumber, runCli, type CliValues } from './lib/cli';
import { LOCAL_RECORD_OPTIONS, localRecordDependencies } from './lib/scf-local';

export const scfServeCli = defineCli({
  name: 'scf:serve',
  summary: 'Serves the scf-record handler (functions/scf-record) on 127.0.0.1 as the API gateway would call it.',
  usage: '[--port PORT] [--room sim:@SCENARIO] [--local-bucket-root DIR]',
  options: {
    port: { type: 'string', placeholder: 'PORT', default: '9000', description: 'port on 127.0.0.1 (0: any free port, printed on start)' },
    ...LOCAL_RECORD_OPTIONS,
  },
  notes: [
    'Request headers reach the handler as the gateway passes them: a Stop must carry Authorization: Bearer\n' +
      '<CONTROL_SECRET>, with CONTROL_SECRET set in this server\'s environment (unset, HTTP Stop answers 403).\n' +
      'COS_ENDPOINT, TRTC_API_ENDPOINT and the TENCENTCLOUD_* keys are honoured as by scf:invoke. A Record answers when its\n' +
      'recording ends: send it in the background (curl … &), then a Stop, which kicks its simulated room through the\n' +
      'TRTC API emulator (npm run emulators).\n' +
      'Ctrl-C or SIGTERM stops accepting requests, lets a running recording stop, finalise and answer, then exits.',
  ],
  examples: [
    'npm run scf:serve -- --port 9000 --room sim:@local-output/scenario.json --local-bucket-root ./local-output',
    "curl -X POST http://127.0.0.1:9000/ -H 'Content-Type: application/json' -d @events/scf-record.json",
    'curl -X POST http://127.0.0.1:9000/ -H "Authorization: Bearer $CONTROL_SECRET" -d @events/scf-stop.json',
  ],
  exitCodes: [
    [0, 'stopped by Ctrl-C or SIGTERM'],
    [1, 'the server failed'],
    [2, 'a command-line mistake, or the port is busy'],
  ],
});

/** The event API gateway would deliver for this request. */
export function gatewayEvent(request: IncomingMessage, body: Buffer) {
  return {
    httpMethod: request.method,
    path: request.url,
    headers: request.headers,
    body: body.toString('base64'),
    isBase64Encoded: true,
    requestContext: { httpMethod: request.method, path: request.url },
  };
}

export async function scfServe(values: CliValues<typeof scfServeCli.options>): Promise<number> {
  const port = portNumber('port', values.port);
  const handler = createRecordHandler(localRecordDependencies({ room: values.room, localBucketRoot: values['local-bucket-root'] }));
  let stopping = false;

  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', async () => {
      try {
        const answer = (await handler(gatewayEvent(request, Buffer.concat(chunks)), { request_id: randomUUID() })) as {
          statusCode: number;
          headers: Record<string, string>;
          body: string;
        };
        // Past a stop signal, no connection is kept open for another request.
        if (stopping) response.setHeader('connection', 'close');
        response.writeHead(answer.statusCode, answer.headers).end(answer.body);
      } catch (error) {
        // The handler answers its own failures; this is a bug, reported rather than left hanging.
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`scf:serve: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(listenError(error, port)));
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: actualPort } = server.address() as AddressInfo;
  const stopNote = process.env.CONTROL_SECRET ? 'Stop needs Authorization: Bearer $CONTROL_SECRET' : 'CONTROL_SECRET is unset, so Stop over HTTP answers 403';
  process.stderr.write(`scf:serve listening on http://127.0.0.1:${actualPort}/ (POST a record or Stop request; ${stopNote})\n`);

  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`scf:serve: ${signal} again, exiting without waiting\n`);
        process.exit(1);
      }
      stopping = true;
      process.stderr.write(`scf:serve: ${signal}, stopping (a running recording finalises first)\n`);
      // Stops accepting; closes idle keep-alive connections; resolves once running requests are answered.
      server.close(() => resolve(0));
      server.closeIdleConnections();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

if (require.main === module) runCli(scfServeCli, scfServe);
