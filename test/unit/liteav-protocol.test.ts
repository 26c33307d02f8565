import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readConfig } from '../../shared/config';
import { encodeMediaFrame, MEDIA_HEADER_BYTES, parseRoomEvent, RoomMediaReader, type RoomMediaFrame } from '../../shared/sources/liteav/protocol';
import { repoRoot } from '../support/liteav';

const audio: RoomMediaFrame = { kind: 'audio', userId: 'alice', data: Buffer.alloc(1920, 7), inRing: null, sampleRate: 48_000, channels: 1, arrivalMs: 20.5, ptsMs: 123456789012 };
const video: RoomMediaFrame = { kind: 'video', userId: '用户_b', data: Buffer.alloc(16 * 16 * 1.5, 9), inRing: null, width: 16, height: 16, droppedBefore: 3, arrivalMs: 33.25, ptsMs: 40 };

describe('the media pipe', () => {
  it('reads frames back whatever the chunking, each payload its own copy', () => {
    const inRing: RoomMediaFrame = { ...video, data: Buffer.alloc(0), inRing: { offset: 4096, bytes: 384 } };
    const stream = Buffer.concat([encodeMediaFrame(audio), encodeMediaFrame(video), encodeMediaFrame(inRing), encodeMediaFrame(audio)]);
    for (const size of [1, 7, MEDIA_HEADER_BYTES, 1000, stream.length]) {
      const reader = new RoomMediaReader();
      const frames: RoomMediaFrame[] = [];
      for (let offset = 0; offset < stream.length; offset += size) frames.push(...reader.push(stream.subarray(offset, offset + size)));
      expect(frames, `chunks of ${size}`).toEqual([audio, video, inRing, audio]);
      expect(frames[0]!.data.buffer).not.toBe(stream.buffer);
    }
  });

  it('refuses a stream that is not the protocol', () => {
    const bad = encodeMediaFrame(audio);
    bad.writeUInt8(9, 4);
    expect(() => new RoomMediaReader().push(bad)).toThrow('unknown frame kind 9');
  });

  it('is written by room_process.py exactly as read here (the header layouts agree)', () => {
    // The Python side packs the same frame; the bytes must be identical.
    const script = [
      'import sys, importlib.util',
      `spec = importlib.util.spec_from_file_location('room_process', ${JSON.stringify(join(repoRoot, 'shared/sources/liteav/room_process.py'))})`,
      'module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)',
      "user = '用户_b'.encode()",
      "sys.stdout.buffer.write(module.FRAME_HEADER.pack(384, module.KIND_VIDEO, len(user), 16, 16, 3, 33.25, 40.0, module.INLINE) + user)",
    ].join('\n');
    const python = spawnSync('python3', ['-c', script]);
    expect(python.stderr.toString()).toBe('');
    expect(python.stdout).toEqual(encodeMediaFrame(video).subarray(0, MEDIA_HEADER_BYTES + Buffer.byteLength('用户_b')));
  });
});

describe('events', () => {
  it('parses the known ones and nothing else', () => {
    expect(parseRoomEvent('{"event":"exited","reason":"kicked"}')).toEqual({ event: 'exited', reason: 'kicked' });
    expect(parseRoomEvent('{"event":"enter-failed","code":-1,"name":"ERR_FAILED","afterMs":21315,"sdkCode":-3307,"sdkMessage":"Request timeout"}')).toMatchObject({ sdkCode: -3307 });
    expect(parseRoomEvent('{"event":"exited","reason":"vanished"}')).toBeUndefined();
    expect(parseRoomEvent('not json')).toBeUndefined();
  });
});

describe('TRTC_ROOM_SDK', () => {
  it('is liteav by default on Linux, the Electron SDK elsewhere, and says so when it names neither', () => {
    expect(readConfig({}, 'linux').trtcRoomSdk).toBe('liteav');
    expect(readConfig({}, 'darwin').trtcRoomSdk).toBe('electron');
    expect(readConfig({ TRTC_ROOM_SDK: 'Electron' }, 'linux')).toMatchObject({ trtcRoomSdk: 'electron' });
    expect(readConfig({ TRTC_ROOM_SDK: 'liteav', TRTC_LITEAV_PYTHON: '/opt/liteav/bin/python' }, 'win32')).toMatchObject({ trtcRoomSdk: 'liteav', liteavPython: '/opt/liteav/bin/python' });
    expect(readConfig({ TRTC_ROOM_SDK: 'webrtc' }, 'linux')).toMatchObject({ trtcRoomSdk: 'liteav', trtcRoomSdkUnknown: 'webrtc' });
  });
});
