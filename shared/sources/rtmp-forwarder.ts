import net from 'node:net';
import tls from 'node:tls';
import { guardedLookup } from '../network-guard';
import type { RtmpUrl } from './rtmp/client';
import { describeConnectionError, type SourceEnd } from './video-source';

/**
 * For ffmpeg's RTMP client (our fallback): a one-connection TCP relay on loopback. ffmpeg
 * connects to 127.0.0.1 (no name to resolve); Node connects to the source through the guarded
 * lookup, with TLS (verified, SNI) for rtmps, and relays bytes both ways.
 */
export class RtmpForwarder {
  /** Why the connection to the source failed, when it did. */
  upstreamFailure: Pick<SourceEnd, 'reason' | 'code' | 'message'> | undefined;
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server) {}

  static async start(target: RtmpUrl): Promise<RtmpForwarder> {
    const server = net.createServer();
    const forwarder = new RtmpForwarder(server);
    server.maxConnections = 1;
    server.on('connection', (local) => forwarder.relay(local, target));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    return forwarder;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  close(): void {
    for (const socket of this.sockets) socket.destroy();
    this.server.close();
  }

  private relay(local: net.Socket, target: RtmpUrl): void {
    const options = { host: target.host, port: target.port, lookup: guardedLookup };
    const upstream = target.secure ? tls.connect({ ...options, servername: net.isIP(target.host) ? undefined : target.host }) : net.connect(options);
    this.sockets.add(local).add(upstream);
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      this.upstreamFailure ??= describeConnectionError(error, `${target.host}:${target.port}`);
      local.destroy();
    });
    local.on('error', () => upstream.destroy());
    local.pipe(upstream);
    upstream.pipe(local);
    local.on('close', () => upstream.destroy());
    upstream.on('close', () => local.destroy());
  }
}
