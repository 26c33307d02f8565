import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnTracked, type TrackedProcess } from './child-processes';

export interface RtmpServer {
  kind: 'node-media-server' | 'nginx-rtmp';
  port: number;
  /** The server process, e.g. to kill it mid-stream. */
  pid: number;
  /** rtmp://127.0.0.1:PORT/live/NAME */
  url(streamName: string): string;
  /** Kills the server (and its process group), waits for it to exit and removes its temp dir. */
  stop(): Promise<void>;
}

export const NGINX_SKIP_MESSAGE = 'nginx-rtmp interop tests SKIPPED: nginx or libnginx-mod-rtmp not installed';

const STARTUP_TIMEOUT_MS = 10_000;

/** Asks the kernel for a free port. Another process could take it before we use it; unlikely enough for tests. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Resolves once `port` accepts TCP connections; fails early if the server process dies. */
async function waitForPort(port: number, proc: TrackedProcess, describe: () => string): Promise<void> {
  let exitCode: number | null | undefined;
  void proc.exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`${describe()} exited (code ${exitCode}) before listening`);
    if (await acceptsConnections(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${describe()} did not listen on port ${port} within ${STARTUP_TIMEOUT_MS} ms`);
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function startServer(
  kind: RtmpServer['kind'],
  port: number,
  dir: string,
  logFile: string,
  command: string,
  args: string[],
): Promise<RtmpServer> {
  const proc = spawnTracked(command, args, { cwd: dir, stdout: { file: logFile }, tempDir: dir });
  try {
    await waitForPort(port, proc, () => `${kind}: ${proc.output()}${readText(logFile).slice(-4_000)}`);
  } catch (error) {
    await proc.stop();
    throw error;
  }
  return {
    kind,
    port,
    pid: proc.pid,
    url: (streamName) => `rtmp://127.0.0.1:${port}/live/${streamName}`,
    stop: () => proc.stop('SIGTERM'),
  };
}

/**
 * node-media-server v4 in a child process: it keeps its state in module-level
 * globals, so two in-process instances would share it. RTMP on 127.0.0.1, and
 * HTTP-FLV when asked; no HTTPS/RTMPS/admin. The config lives in a temp dir, because the CLI
 * writes generated secrets back into the config file it was given.
 */
export async function startNodeMediaServer(options: { httpFlv?: boolean } = {}): Promise<RtmpServer & { httpFlvUrl(streamName: string): string }> {
  const port = await freePort();
  const httpPort = options.httpFlv ? await freePort() : undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nms-'));
  const configFile = path.join(dir, 'config.json');
  // NMS logs everything, one line per session event, on stdout.
  const logFile = path.join(dir, 'nms.log');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      bind: '127.0.0.1',
      rtmp: { port },
      ...(httpPort ? { http: { port: httpPort } } : {}),
      store: { path: path.join(dir, 'data') },
      record: { auto: false, path: path.join(dir, 'record') },
      webadmin: { enable: false },
      notify: { url: '' },
    }),
  );
  const bin = require.resolve('node-media-server/bin/app.js');
  const server = await startServer('node-media-server', port, dir, logFile, process.execPath, [bin, '-c', configFile]);
  return {
    ...server,
    httpFlvUrl: (streamName) => {
      if (!httpPort) throw new Error('started without httpFlv');
      return `http://127.0.0.1:${httpPort}/live/${streamName}.flv`;
    },
  };
}

interface NginxInstall {
  nginx: string;
  rtmpModule: string;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function findNginxBinary(): string | undefined {
  // sbin directories are often missing from a non-root PATH.
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin'];
  return dirs.filter(Boolean).map((dir) => path.join(dir, 'nginx')).find(isExecutable);
}

function findRtmpModule(): string | undefined {
  const candidates = ['/usr/lib/nginx/modules/ngx_rtmp_module.so'];
  // Debian enables modules with `load_module modules/ngx_rtmp_module.so;`, relative to its prefix /usr/share/nginx.
  const enabledDir = '/etc/nginx/modules-enabled';
  if (fs.existsSync(enabledDir)) {
    for (const entry of fs.readdirSync(enabledDir)) {
      const text = readText(path.join(enabledDir, entry));
      for (const match of text.matchAll(/load_module\s+([^;\s]*rtmp[^;\s]*)\s*;/g)) {
        candidates.push(path.resolve('/usr/share/nginx', match[1] ?? ''));
      }
    }
  }
  return candidates.find((file) => fs.existsSync(file));
}

function findNginxInstall(): NginxInstall | undefined {
  const nginx = findNginxBinary();
  const rtmpModule = nginx && findRtmpModule();
  return nginx && rtmpModule ? { nginx, rtmpModule } : undefined;
}

/** Whether startNginxRtmp() can run here; skip nginx interop tests with NGINX_SKIP_MESSAGE otherwise. */
export function nginxAvailable(): boolean {
  return findNginxInstall() !== undefined;
}

/** nginx + the rtmp module with a generated config, or null when they are not installed. */
export async function startNginxRtmp(): Promise<RtmpServer | null> {
  const install = findNginxInstall();
  if (!install) return null;
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nginx-rtmp-'));
  const configFile = path.join(dir, 'nginx.conf');
  const logFile = path.join(dir, 'error.log');
  // Single foreground process, so stopping it needs no pid file dance.
  fs.writeFileSync(
    configFile,
    [
      'daemon off;',
      'master_process off;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${logFile} info;`,
      `load_module ${install.rtmpModule};`,
      'events { worker_connections 64; }',
      `rtmp { server { listen 127.0.0.1:${port}; application live { live on; } } }`,
      '',
    ].join('\n'),
  );
  // -e: otherwise nginx opens its compiled-in /var/log/nginx/error.log before reading the config.
  return startServer('nginx-rtmp', port, dir, logFile, install.nginx, ['-p', dir, '-c', configFile, '-e', logFile]);
}
