import { describe, expect, it } from 'vitest';
import { AmfError, decodeAmf0, encodeAmf0 } from '../../shared/sources/rtmp/amf0';
import { FLV_TAG_FRAMING, flvTag, flvTagInFrame } from '../../shared/media/flv';
import { ChunkReader, encodeChunks, RtmpProtocolError, type RtmpMessage } from '../../shared/sources/rtmp/chunk-stream';
import { parseRtmpUrl } from '../../shared/sources/rtmp/client';

describe('AMF0', () => {
  it('round-trips what RTMP commands carry', () => {
    const values = ['connect', 1, { app: 'live', tcUrl: 'rtmp://h/live', fpad: false, nested: { a: null, list: [1, 'two'] } }, null, undefined, true];
    expect(decodeAmf0(encodeAmf0(values))).toEqual(values);
  });

  it('reads ECMA arrays (onMetaData), typed objects and long strings as servers send them', () => {
    const ecma = Buffer.concat([Buffer.from([0x08, 0, 0, 0, 1, 0, 5]), Buffer.from('width'), Buffer.from([0x00]), Buffer.alloc(8), Buffer.from([0, 0, 9])]);
    expect(decodeAmf0(ecma)).toEqual([{ width: 0 }]);
    const longString = Buffer.concat([Buffer.from([0x0c, 0, 0, 0, 3]), Buffer.from('abc')]);
    expect(decodeAmf0(longString)).toEqual(['abc']);
  });

  it('refuses what it does not speak, and values that end early', () => {
    expect(() => decodeAmf0(Buffer.from([0x11, 0x01]))).toThrow(AmfError);
    expect(() => decodeAmf0(Buffer.from([0x02, 0, 9, 0x61]))).toThrow(AmfError);
  });
});

const message = (type: number, payload: Buffer, timestamp = 0, streamId = 0): RtmpMessage => ({ type, streamId, timestamp, payload });

describe('ChunkReader', () => {
  it('reassembles messages split into chunks, whatever the byte boundaries', () => {
    const payload = Buffer.alloc(1000, 7);
    const bytes = Buffer.concat([encodeChunks(6, message(9, payload, 40, 1), 128), encodeChunks(4, message(8, Buffer.from([1, 2, 3]), 41, 1), 128)]);
    const whole = new ChunkReader().push(bytes);
    expect(whole).toEqual([message(9, payload, 40, 1), message(8, Buffer.from([1, 2, 3]), 41, 1)]);
    const reader = new ChunkReader();
    const byByte = [...bytes].flatMap((byte) => reader.push(Buffer.from([byte])));
    expect(byByte).toEqual(whole);
  });

  it('keeps nothing of its input: a read buffer reused for every read (the socket\'s onread) leaves the messages whole', () => {
    const payload = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
    const bytes = Buffer.concat([encodeChunks(6, message(9, payload, 40, 1), 128), encodeChunks(4, message(8, Buffer.from([1, 2, 3]), 41, 1), 128)]);
    const readBuffer = Buffer.alloc(7);
    const reader = new ChunkReader();
    const messages: RtmpMessage[] = [];
    for (let offset = 0; offset < bytes.length; offset += readBuffer.length) {
      const count = bytes.copy(readBuffer, 0, offset, offset + readBuffer.length);
      messages.push(...reader.push(readBuffer.subarray(0, count)));
      readBuffer.fill(0xee);
    }
    expect(messages).toEqual(new ChunkReader().push(bytes));
    expect(messages.map((m) => m.payload.length)).toEqual([5000, 3]);
    expect(reader.bufferedBytes).toBe(0);
  });

  it('receives each message into a frame with the room asked for: an FLV tag made in place equals one made by copying', () => {
    const payload = Buffer.from([0x17, 1, 0, 0, 0, 9, 9, 9]);
    const [received] = new ChunkReader(FLV_TAG_FRAMING).push(encodeChunks(6, message(9, payload, 0x01020304, 1), 128));
    expect(received!.payload).toEqual(payload);
    expect(received!.frame!.length).toBe(11 + payload.length + 4);
    expect(flvTagInFrame(9, received!.timestamp, received!.frame!)).toEqual(flvTag(9, 0x01020304, payload));
  });

  it('bounds what unfinished messages make it allocate: a server announcing large messages on many chunk streams is refused', () => {
    // Each chunk stream announces an 8 MB message and sends its first 128-byte chunk only.
    const started = (csid: number) => Buffer.concat([Buffer.from([csid, 0, 0, 0, 0x7f, 0xff, 0xff, 9, 1, 0, 0, 0]), Buffer.alloc(128)]);
    const reader = new ChunkReader();
    for (let csid = 3; csid < 7; csid++) expect(reader.push(started(csid))).toEqual([]);
    expect(reader.bufferedBytes).toBe(4 * 0x7fffff);
    expect(() => reader.push(started(7))).toThrow(RtmpProtocolError);
  });

  it('applies a Set Chunk Size to the very next chunk in the same read', () => {
    const setChunkSize = encodeChunks(2, message(1, Buffer.from([0, 0, 0x10, 0])), 128);
    const big = encodeChunks(3, message(20, Buffer.alloc(3000, 1)), 4096);
    const messages = new ChunkReader().push(Buffer.concat([setChunkSize, big]));
    expect(messages.map((m) => [m.type, m.payload.length])).toEqual([[1, 4], [20, 3000]]);
  });

  it('follows compressed headers: type 1 and 2 add their delta, type 3 repeats it', () => {
    const header0 = Buffer.from([0x06, 0, 0, 100, 0, 0, 2, 9, 1, 0, 0, 0]);
    const header1 = Buffer.from([0x46, 0, 0, 33, 0, 0, 2, 9]);
    const header2 = Buffer.from([0x86, 0, 0, 34]);
    const header3 = Buffer.from([0xc6]);
    const bytes = Buffer.concat([header0, Buffer.from([1, 1]), header1, Buffer.from([2, 2]), header2, Buffer.from([3, 3]), header3, Buffer.from([4, 4])]);
    expect(new ChunkReader().push(bytes).map((m) => m.timestamp)).toEqual([100, 133, 167, 201]);
  });

  it('reads extended timestamps, repeated on continuation chunks', () => {
    const payload = Buffer.alloc(200, 5);
    const messages = new ChunkReader().push(encodeChunks(5, message(9, payload, 0x01000000), 128));
    expect(messages).toEqual([message(9, payload, 0x01000000)]);
  });

  it('refuses a chunk stream that starts without a full header, and oversized messages', () => {
    expect(() => new ChunkReader().push(Buffer.from([0x46, 0, 0, 1, 0, 0, 1, 9, 0]))).toThrow(RtmpProtocolError);
    expect(() => new ChunkReader().push(Buffer.from([0x06, 0, 0, 0, 0xff, 0xff, 0xff, 9, 0, 0, 0, 0]))).toThrow(RtmpProtocolError);
  });
});

describe('parseRtmpUrl', () => {
  it('splits app and stream as ffmpeg does, keeping the query on the stream name', () => {
    expect(parseRtmpUrl('rtmp://live.example.com/live/cam1?auth_key=abc')).toEqual({
      secure: false, host: 'live.example.com', port: 1935, app: 'live', playPath: 'cam1?auth_key=abc', tcUrl: 'rtmp://live.example.com/live',
    });
    expect(parseRtmpUrl('rtmps://h.example.com:8443/app/inst/stream')).toMatchObject({ secure: true, port: 8443, app: 'app/inst', playPath: 'stream', tcUrl: 'rtmps://h.example.com:8443/app/inst' });
    expect(parseRtmpUrl('rtmps://h.example.com/live/s').port).toBe(443);
    expect(parseRtmpUrl('rtmp://h/vod/movie.flv').playPath).toBe('movie');
    expect(parseRtmpUrl('rtmp://h/vod/movie.mp4').playPath).toBe('mp4:movie.mp4');
    expect(parseRtmpUrl('rtmp://[::1]:1936/live/s')).toMatchObject({ host: '::1', port: 1936 });
  });
});
