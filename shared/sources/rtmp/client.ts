import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { guardedLookup } from '../../network-guard';
import { describeConnectionError } from '../video-source';
import { decodeAmf0, encodeAmf0, AmfError, type AmfObject, type AmfValue } from './amf0';
import { FLV_TAG_FRAMING } from '../../media/flv';
import { ChunkReader, encodeChunks, RtmpProtocolError, type RtmpMessage } from './chunk-stream';

/**
 * An RTMP(S) player in Node: connects (names resolved here, refusing metadata and link-local
 * addresses; TLS verified with SNI), does the simple handshake, `connect`, `createStream` and
 * `play`, keeps the connection healthy (acknowledgements, pings, chunk sizes) and hands over each
 * video message as it completes. Audio is received and dropped. What it does not understand ends
 * the session as `unsupported`, so the caller can fall back to ffmpeg's client.
 */

export interface RtmpUrl {
  secure: boolean;
  host: string;
  port: number;
  app: string;
  playPath: string;
  tcUrl: string;
}

/** How ffmpeg reads an rtmp URL: app is the first path element (two when there are three or more), the rest is the stream. */
export function parseRtmpUrl(raw: string): RtmpUrl {
  const url = new URL(raw);
  const secure = url.protocol === 'rtmps:';
  if (!secure && url.protocol !== 'rtmp:') throw new RangeError(`not an rtmp URL: ${url.protocol}`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port ? Number(url.port) : secure ? 443 : 1935;
  const path = url.pathname.replace(/^\//, '');
  const parts = path.split('/');
  let app: string;
  let stream: string;
  if (parts.length <= 2) {
    app = parts[0] ?? '';
    stream = parts[1] ?? '';
  } else {
    app = parts.slice(0, 2).join('/');
    stream = parts.slice(2).join('/');
  }
  stream = decodeURIComponent(stream) + url.search;
  // As ffmpeg (and Flash) name recorded files: .flv dropped, mp4 family prefixed.
  if (/\.flv(\?|$)/i.test(stream)) stream = stream.replace(/\.flv(?=\?|$)/i, '');
  else if (/\.(mp4|f4v|mov|m4v)(\?|$)/i.test(stream) && !stream.startsWith('mp4:')) stream = `mp4:${stream}`;
  const tcUrl = `${url.protocol}//${url.host}/${decodeURIComponent(app)}`;
  return { secure, host, port, app: decodeURIComponent(app), playPath: stream, tcUrl };
}

export type RtmpEnd =
  /** We closed it. */
  | { kind: 'stopped' }
  /** The server closed the connection or ended the stream. */
  | { kind: 'closed'; detail: string }
  /** The server refused something we asked (connect, play) or a network/TLS failure. */
  | { kind: 'failed'; code: string; message: string }
  /** Something we do not speak (handshake, an AMF3 value, a malformed chunk): ffmpeg may. */
  | { kind: 'unsupported'; message: string };

export interface RtmpPlayerOptions {
  url: string;
  /** Epoch ms by which the handshake, connect and play must be done. */
  setupDeadlineMs: number;
  onVideo(message: RtmpMessage): void;
  /** Audio messages; left out, they are dropped on arrival. */
  onAudio?(message: RtmpMessage): void;
  /** Each onStatus code (NetStream.Play.Start, .UnpublishNotify, …), for logs. */
  onStatus?(code: string, description: string): void;
}

const MSG_SET_CHUNK_SIZE = 1;
const MSG_ABORT = 2;
const MSG_ACK = 3;
const MSG_USER_CONTROL = 4;
const MSG_WINDOW_ACK_SIZE = 5;
const MSG_SET_PEER_BANDWIDTH = 6;
const MSG_AUDIO = 8;
const MSG_VIDEO = 9;
const MSG_DATA_AMF3 = 15;
const MSG_COMMAND_AMF3 = 17;
const MSG_DATA_AMF0 = 18;
const MSG_COMMAND_AMF0 = 20;
const MSG_AGGREGATE = 22;
const USER_STREAM_BEGIN = 0;
const USER_SET_BUFFER_LENGTH = 3;
const USER_PING_REQUEST = 6;
const USER_PING_RESPONSE = 7;

const HANDSHAKE_BYTES = 1536;
const OUR_CHUNK_SIZE = 4096;
const OUR_WINDOW_ACK_SIZE = 2_500_000;
const BUFFER_LENGTH_MS = 3_000;
const CONTROL_CSID = 2;
const COMMAND_CSID = 3;
const STREAM_CSID = 8;
/** What ffmpeg and librtmp announce; some servers look at it. */
const FLASH_VERSION = 'LNX 9,0,124,2';
/** One socket read at most; the buffer is reused for every read. */
const READ_BUFFER_BYTES = 64 * 1024;

type Phase = 'handshake' | 'connect' | 'createStream' | 'play' | 'playing';

export class RtmpPlayer {
  readonly ended: Promise<RtmpEnd>;
  private readonly target: RtmpUrl;
  private socket: net.Socket | undefined;
  /** Room for an FLV tag's header and trailer around each message: media becomes tags in place. */
  private readonly reader = new ChunkReader(FLV_TAG_FRAMING);
  private phase: Phase = 'handshake';
  private handshake = Buffer.alloc(0);
  private c1 = Buffer.alloc(0);
  private bytesReceived = 0;
  private lastAcked = 0;
  private windowAckSize = 0;
  private finish!: (end: RtmpEnd) => void;
  private done = false;
  private setupTimer: NodeJS.Timeout | undefined;
  private resolvePlaying!: () => void;
  /** Resolves when the server says the stream plays (or the first media arrives). */
  readonly playing: Promise<void>;

  constructor(private readonly options: RtmpPlayerOptions) {
    this.target = parseRtmpUrl(options.url);
    this.ended = new Promise((resolve) => (this.finish = resolve));
    this.playing = new Promise((resolve) => (this.resolvePlaying = resolve));
    this.connect();
  }

  /** Where we are connected, for messages: host:port. */
  get address(): string {
    return `${this.target.host}:${this.target.port}`;
  }

  stop(): Promise<RtmpEnd> {
    this.end({ kind: 'stopped' });
    return this.ended;
  }

  private connect(): void {
    const { host, port, secure } = this.target;
    const common = { host, port, lookup: guardedLookup };
    // Plain TCP reads into one buffer of ours, reused for every read (the chunk reader keeps
    // nothing of it): no allocation and no stream machinery per read, a third of Node's cost of
    // receiving a 5.6 Mbit/s stream. TLS keeps its 'data' events.
    const readBuffer = secure ? undefined : Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const onread = (bytes: number) => {
      this.receive(readBuffer!.subarray(0, bytes));
      return true;
    };
    const socket = secure
      ? tls.connect({ ...common, servername: net.isIP(host) ? undefined : host })
      : net.connect({ ...common, onread: { buffer: readBuffer!, callback: onread } });
    this.socket = socket;
    socket.setNoDelay(true);
    this.setupTimer = setTimeout(() => this.setupTimedOut(), Math.max(0, this.options.setupDeadlineMs - Date.now()));
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      this.c1 = Buffer.concat([Buffer.alloc(8), randomBytes(HANDSHAKE_BYTES - 8)]);
      socket.write(Buffer.concat([Buffer.from([3]), this.c1]));
    });
    if (secure) socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => this.end(this.describeSocketError(error)));
    socket.on('close', () => {
      if (this.phase === 'handshake') return this.end({ kind: 'unsupported', message: `the server closed the connection during the RTMP handshake` });
      this.end({ kind: 'closed', detail: this.phase === 'playing' ? 'the server closed the connection' : `the server closed the connection during ${this.phase}` });
    });
  }

  private setupTimedOut(): void {
    if (this.phase === 'playing') return;
    this.end({ kind: 'failed', code: 'timeout', message: `no answer from ${this.address} within the connect timeout (stuck at ${this.phase})` });
  }

  private describeSocketError(error: NodeJS.ErrnoException): RtmpEnd {
    const described = describeConnectionError(error, this.address);
    if (described.reason === 'closed') return { kind: 'closed', detail: described.message! };
    return { kind: 'failed', code: described.code!, message: described.message! };
  }


  private end(end: RtmpEnd): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.setupTimer);
    this.socket?.destroy();
    this.finish(end);
  }

  private receive(chunk: Buffer): void {
    if (this.done) return;
    this.bytesReceived += chunk.length;
    try {
      if (this.phase === 'handshake') {
        chunk = this.readHandshake(chunk);
        if (this.phase === 'handshake' || chunk.length === 0) return;
      }
      for (const message of this.reader.push(chunk)) {
        this.onMessage(message);
        if (this.done) return;
      }
      this.acknowledge();
    } catch (error) {
      if (error instanceof RtmpProtocolError || error instanceof AmfError) this.end({ kind: 'unsupported', message: error.message });
      else throw error;
    }
  }

  /** S0+S1+S2, then C2 and `connect`; returns what came after S2. */
  private readHandshake(chunk: Buffer): Buffer {
    this.handshake = Buffer.concat([this.handshake, chunk]);
    const needed = 1 + 2 * HANDSHAKE_BYTES;
    if (this.handshake.length < needed) return Buffer.alloc(0);
    if (this.handshake[0] !== 3) throw new RtmpProtocolError(`the server answered RTMP version ${this.handshake[0]}, not 3`);
    const s1 = this.handshake.subarray(1, 1 + HANDSHAKE_BYTES);
    const c2 = Buffer.from(s1);
    c2.writeUInt32BE(Date.now() >>> 0 & 0x7fffffff, 4);
    this.socket!.write(c2);
    const rest = this.handshake.subarray(needed);
    this.handshake = Buffer.alloc(0);
    this.phase = 'connect';
    this.send(CONTROL_CSID, MSG_SET_CHUNK_SIZE, 0, uint32(OUR_CHUNK_SIZE));
    this.command(COMMAND_CSID, 0, ['connect', 1, {
      app: this.target.app,
      flashVer: FLASH_VERSION,
      tcUrl: this.target.tcUrl,
      fpad: false,
      capabilities: 15,
      audioCodecs: 4071,
      videoCodecs: 252,
      videoFunction: 1,
    }]);
    return Buffer.from(rest);
  }

  private chunkSizeOut = 128;

  private send(csid: number, type: number, streamId: number, payload: Buffer): void {
    if (this.done) return;
    this.socket!.write(encodeChunks(csid, { type, streamId, timestamp: 0, payload }, this.chunkSizeOut));
    if (type === MSG_SET_CHUNK_SIZE) this.chunkSizeOut = payload.readUInt32BE(0) & 0x7fffffff;
  }

  private command(csid: number, streamId: number, values: AmfValue[]): void {
    this.send(csid, MSG_COMMAND_AMF0, streamId, encodeAmf0(values));
  }

  private acknowledge(): void {
    if (this.windowAckSize > 0 && this.bytesReceived - this.lastAcked >= this.windowAckSize) {
      this.lastAcked = this.bytesReceived;
      this.send(CONTROL_CSID, MSG_ACK, 0, uint32(this.bytesReceived >>> 0));
    }
  }

  private onMessage(message: RtmpMessage): void {
    switch (message.type) {
      case MSG_SET_CHUNK_SIZE:
      case MSG_ABORT:
        return; // applied by the chunk reader
      case MSG_WINDOW_ACK_SIZE:
        this.windowAckSize = readUint32(message.payload);
        return;
      case MSG_SET_PEER_BANDWIDTH:
        return this.send(CONTROL_CSID, MSG_WINDOW_ACK_SIZE, 0, uint32(OUR_WINDOW_ACK_SIZE));
      case MSG_USER_CONTROL:
        return this.onUserControl(message.payload);
      case MSG_VIDEO:
        return this.onMedia(message);
      case MSG_AGGREGATE:
        return this.onAggregate(message);
      case MSG_COMMAND_AMF0:
        return this.onCommand(decodeAmf0(message.payload));
      case MSG_COMMAND_AMF3:
        // An AMF3 command is AMF0 after a format byte (0) that servers always send.
        return this.onCommand(decodeAmf0(message.payload.subarray(1)));
      case MSG_AUDIO:
        if (message.payload.length > 0) this.options.onAudio?.(message);
        return;
      case MSG_ACK:
      case MSG_DATA_AMF0:
      case MSG_DATA_AMF3:
      default:
        return;
    }
  }

  private onUserControl(payload: Buffer): void {
    if (payload.length < 2) return;
    const event = payload.readUInt16BE(0);
    if (event === USER_PING_REQUEST && payload.length >= 6) {
      const answer = Buffer.alloc(6);
      answer.writeUInt16BE(USER_PING_RESPONSE, 0);
      payload.copy(answer, 2, 2, 6);
      this.send(CONTROL_CSID, MSG_USER_CONTROL, 0, answer);
    } else if (event === USER_STREAM_BEGIN && this.phase === 'playing') {
      this.markPlaying();
    }
  }

  private onMedia(message: RtmpMessage): void {
    if (message.payload.length === 0) return;
    this.markPlaying();
    this.options.onVideo(message);
  }

  /** Several FLV tags in one message; their times are made relative to the message's. */
  private onAggregate(message: RtmpMessage): void {
    const payload = message.payload;
    let base: number | undefined;
    for (let offset = 0; offset + 11 <= payload.length; ) {
      const type = payload[offset]! & 0x1f;
      const size = payload.readUIntBE(offset + 1, 3);
      const timestamp = (payload.readUIntBE(offset + 4, 3) | (payload[offset + 7]! << 24)) >>> 0;
      const end = offset + 11 + size;
      if (end > payload.length) throw new RtmpProtocolError('an aggregate message ends inside a tag');
      base ??= timestamp;
      const part = { type, streamId: message.streamId, timestamp: (message.timestamp + timestamp - base) >>> 0, payload: payload.subarray(offset + 11, end) };
      if (type === MSG_VIDEO) this.onMedia(part);
      else if (type === MSG_AUDIO && part.payload.length > 0) this.options.onAudio?.(part);
      offset = end + 4;
    }
  }

  private onCommand(values: AmfValue[]): void {
    const [name, transaction] = values;
    if (name === '_result' || name === '_error') return this.onResult(name, transaction, values);
    if (name === 'onStatus') return this.onStatus(values[3] as AmfObject | undefined);
    // onBWDone, |RtmpSampleAccess, …: nothing we need to answer.
  }

  private onResult(name: string, transaction: AmfValue, values: AmfValue[]): void {
    const info = (values[3] ?? values[2]) as AmfObject | undefined;
    if (name === '_error') {
      const description = statusText(info);
      const what = transaction === 1 ? 'connection' : transaction === 2 ? 'stream' : 'request';
      return this.end({ kind: 'failed', code: 'rejected', message: `the RTMP server refused the ${what}: ${description}` });
    }
    if (transaction === 1 && this.phase === 'connect') {
      this.phase = 'createStream';
      this.command(COMMAND_CSID, 0, ['createStream', 2, null]);
    } else if (transaction === 2 && this.phase === 'createStream') {
      const streamId = values[3];
      if (typeof streamId !== 'number') throw new RtmpProtocolError('createStream answered without a stream id');
      this.phase = 'play';
      this.command(STREAM_CSID, streamId, ['play', 0, null, this.target.playPath, -2000]);
      const buffer = Buffer.alloc(10);
      buffer.writeUInt16BE(USER_SET_BUFFER_LENGTH, 0);
      buffer.writeUInt32BE(streamId, 2);
      buffer.writeUInt32BE(BUFFER_LENGTH_MS, 6);
      this.send(CONTROL_CSID, MSG_USER_CONTROL, 0, buffer);
    }
  }

  private onStatus(info: AmfObject | undefined): void {
    const code = typeof info?.code === 'string' ? info.code : '';
    const description = statusText(info);
    this.options.onStatus?.(code, description);
    if (code === 'NetStream.Play.Start' || code === 'NetStream.Play.Reset' || code === 'NetStream.Play.PublishNotify') {
      if (code !== 'NetStream.Play.Reset') this.markPlaying();
      return;
    }
    if (code === 'NetStream.Play.StreamNotFound') {
      return this.end({ kind: 'failed', code: 'not-found', message: 'nothing is being published at this URL (the server says it has no such stream)' });
    }
    if (code === 'NetStream.Play.Stop' || code === 'NetStream.Play.Complete') return this.end({ kind: 'closed', detail: `the server ended the stream (${code})` });
    if (info?.level === 'error') return this.end({ kind: 'failed', code: 'rejected', message: `the RTMP server refused the stream: ${description}` });
  }

  private markPlaying(): void {
    // Called for every packet: once playing, nothing to do.
    if (this.phase === 'play') {
      this.phase = 'playing';
      clearTimeout(this.setupTimer);
      this.resolvePlaying();
    }
  }
}

function statusText(info: AmfObject | undefined): string {
  const code = typeof info?.code === 'string' ? info.code : undefined;
  const description = typeof info?.description === 'string' ? info.description : undefined;
  return [code, description].filter(Boolean).join(': ') || 'no reason given';
}

function uint32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out;
}

function readUint32(payload: Buffer): number {
  if (payload.length < 4) throw new RtmpProtocolError('a control message is too short');
  return payload.readUInt32BE(0);
}
