/**
 * Serves the SCF handler over local HTTP the way the API gateway would, for curl/Postman.
 *   npm run scf:serve -- [--port 9000] [--room sim:@scenario.json] [--local-bucket-root DIR]
 * Every POST becomes an API-gateway event; the handler's answer becomes the HTTP response.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createRecordHandler } from '../functions/scf-record';
import { parseArgs } from './lib/cli';
import { localRecordDependencies } from './lib/scf-local';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '9000' }, room: { type: 'string' }, 'local-bucket-root': { type: 'string' } },
});
const handler = createRecordHandler(localRecordDependencies({ room: values.room, localBucketRoot: values['local-bucket-root'] }));

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', async () => {
    const event = {
      httpMethod: request.method,
      path: request.url,
      headers: request.headers,
      body: Buffer.concat(chunks).toString('base64'),
      isBase64Encoded: true,
      requestContext: { httpMethod: request.method, path: request.url },
    };
    const answer = (await handler(event, { request_id: randomUUID() })) as { statusCode: number; headers: Record<string, string>; body: string };
    response.writeHead(answer.statusCode, answer.headers).end(answer.body);
  });
});
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stderr.write(`scf:serve listening on http://127.0.0.1:${values.port}/ (POST a record or Stop request)\n`);
});
