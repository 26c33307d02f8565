/**
 * The recorder as an SCF image function (a custom container image): an HTTP server on port 9000
 * that SCF starts with the image and must find listening within 30 s. For an event function, SCF
 * POSTs each invocation to `/event-invoke` with the event as the body and the invocation's details
 * in headers; the answer's body is the function's return value. The same handler as the code
 * deployment (`createRecordHandler`) does the work, so an API-gateway event inside the body gets the
 * same HTTP response object back, a console event the plain result.
 *
 *   X-Scf-Request-Id       → context.request_id (the result's RequestId, every log line)
 *   X-Scf-Timeout (ms)     → context.time_limit_in_ms (recording stops FINALIZE_MARGIN_MS before it)
 *   X-Scf-Secret-Id, X-Scf-Secret-Key, X-Scf-Session-Token
 *                          → context.tencentCredentials: the function role's temporary keys for this
 *                            invocation, in place of TENCENTCLOUD_* (COS without CosConfig keys, RemoveUser)
 *
 * Anything but POST /event-invoke is 404 (other paths) or 405 (other methods). On SIGTERM the
 * server stops accepting invocations, lets the running one finish (the handler sees the same
 * SIGTERM and stops recording, finalises and uploads), answers it, and exits.
 *
 * `node dist/scf-record/image-server.js` (built by `npm run build`) starts it on PORT (default 9000)
 * on every interface (SCF does not reach a server bound to 127.0.0.1); `npm run scf:image` runs it
 * from source with the local room simulator and store.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readConfig } from '../../shared/config';
import { createLogger, type Logger } from '../../shared/log';
import { createRecordHandler, type ScfContext } from './index';

export const EVENT_INVOKE_PATH = '/event-invoke';
/** SCF image functions: fixed. */
export const SCF_IMAGE_PORT = 9000;
/** SCF's largest synchronous event is 6 MB; a record or stop request is a few hundred bytes. */
const MAX_EVENT_BYTES = 6 * 1024 * 1024;

export type EventHandler = (event: unknown, context: ScfContext) => Promise<unknown>;

export interface ImageServerOptions {
  handler: EventHandler;
  /** Default 9000; 0 picks a free port. */
  port?: number;
  /** Default: every interface. */
  host?: string;
  logger?: Logger;
}

export interface ImageServer {
  server: Server;
  port: number;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** Stops accepting invocations and resolves once the running ones have been answered. */
  close(): Promise<void>;
  /** Invocations being handled now. */
  running(): number;
}

/** What SCF says about this invocation, from the request's headers (Node lowercases their names). */
export function scfContextFromHeaders(headers: IncomingHttpHeaders): ScfContext {
  const one = (name: string): string | undefined => {
    const value = headers[name];
    const text = (Array.isArray(value) ? value[0] : value)?.trim();
    return text ? text : undefined;
  };
  const context: ScfContext = {};
  const requestId = one('x-scf-request-id');
  if (requestId) context.request_id = requestId;
  const timeoutMs = Number(one('x-scf-timeout'));
  if (Number.isSafeInteger(timeoutMs) && timeoutMs > 0) context.time_limit_in_ms = timeoutMs;
  const secretId = one('x-scf-secret-id');
  const secretKey = one('x-scf-secret-key');
  if (secretId && secretKey) context.tencentCredentials = { secretId, secretKey, sessionToken: one('x-scf-session-token') };
  return context;
}

export async function startImageServer(options: ImageServerOptions): Promise<ImageServer> {
  const logger = options.logger ?? createLogger({ requestId: 'image-server', fields: { fn: 'scf-record' } });
  let closing = false;
  let running = 0;

  const send = (res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}) => {
    const body = JSON.stringify(payload === undefined ? null : payload);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(body)),
      // While draining, no connection stays open for another invocation.
      ...(closing ? { Connection: 'close' } : {}),
      ...headers,
    });
    res.end(body);
  };

  const invoke = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://image-server').pathname;
    if (path !== EVENT_INVOKE_PATH) {
      req.resume();
      return send(res, 404, { error: 'NotFound', message: `only POST ${EVENT_INVOKE_PATH} is served` });
    }
    if (req.method !== 'POST') {
      req.resume();
      return send(res, 405, { error: 'MethodNotAllowed', message: `${EVENT_INVOKE_PATH} takes POST` }, { Allow: 'POST' });
    }
    if (closing) {
      req.resume();
      return send(res, 503, { error: 'ShuttingDown', message: 'the instance is stopping' });
    }
    running += 1;
    try {
      const body = await readBody(req, MAX_EVENT_BYTES);
      if (body === undefined) return send(res, 413, { error: 'EventTooLarge', message: `the event exceeds ${MAX_EVENT_BYTES} bytes` });
      const result = await options.handler(parseEvent(body), scfContextFromHeaders(req.headers));
      send(res, 200, result);
    } catch (error) {
      // The handler answers every failure itself; this is a bug or a broken connection.
      logger.error('invocation failed', { error });
      if (!res.headersSent) send(res, 500, { error: 'InternalError', message: 'the invocation failed; see the function log' });
    } finally {
      running -= 1;
    }
  };

  const server = createServer((req, res) => void invoke(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? SCF_IMAGE_PORT, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    running: () => running,
    close() {
      closing = true;
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}

/**
 * SIGTERM (SCF's graceful stop) or SIGINT: stop accepting, wait for the running invocation's
 * answer, exit 0. A second signal exits at once.
 */
export function serveUntilTerminated(
  image: ImageServer,
  options: { logger: Logger; signals?: NodeJS.Signals[]; exit?: (code: number) => void },
): void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      options.logger.warn('second termination signal; exiting now', { signal, running: image.running() });
      exit(1);
      return;
    }
    stopping = true;
    options.logger.info('termination signal: no new invocations; finishing the running ones', { signal, running: image.running() });
    void image.close().then(() => {
      options.logger.info('stopped');
      exit(0);
    });
  };
  for (const signal of options.signals ?? ['SIGTERM', 'SIGINT']) process.on(signal, onSignal);
}

/** The body as JSON; text that is not JSON goes to the handler as it is, which reports it as InvalidInput. */
function parseEvent(body: Buffer): unknown {
  const text = body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The whole body, or undefined once it passes `limit` bytes (the rest is drained, not kept). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > limit ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** `PORT`, if it is a port number. */
function portFrom(value: string | undefined): number | undefined {
  const port = Number(value);
  return value !== undefined && value.trim() !== '' && Number.isInteger(port) && port >= 0 && port < 65536 ? port : undefined;
}

/** The image's entry: the production handler (trtc-electron-sdk, COS) on PORT or 9000. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<ImageServer> {
  // PORT is read here, not in shared/config.ts: it belongs to this server, not to the handler.
  const port = portFrom(env.PORT) ?? SCF_IMAGE_PORT;
  const logger = createLogger({ requestId: 'image-server', level: readConfig(env).logLevel, fields: { fn: 'scf-record' } });
  const image = await startImageServer({ handler: createRecordHandler(), port, logger });
  logger.info('listening', { port: image.port, path: EVENT_INVOKE_PATH });
  serveUntilTerminated(image, { logger });
  return image;
}

if (typeof require !== 'undefined' && typeof module !== 'undefined' && require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`image server failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
