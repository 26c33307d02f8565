import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MediaError } from '../../shared/errors';
import type { RoomListener, RoomTarget } from '../../shared/sources/room-source';
import { createTrtcElectronRoom, RoomEnterError } from '../../shared/sources/trtc-electron-room';
import type {
  TrtcAudioFrameCallback,
  TrtcCloud,
  TrtcCloudEvents,
  TrtcParams,
  TrtcVideoFrame,
  TrtcVideoRenderCallback,
} from '../../shared/sources/trtc-electron-types';

/** A test double of the SDK surface: an event emitter that records every call. */
class FakeTrtcCloud extends EventEmitter implements TrtcCloud {
  readonly calls: Array<{ method: string; args: unknown[] }> = [];
  audioCallback: TrtcAudioFrameCallback | null = null;
  readonly renderCallbacks = new Map<string, TrtcVideoRenderCallback>();

  enterRoom(params: TrtcParams, scene: number): void {
    this.calls.push({ method: 'enterRoom', args: [params, scene] });
  }
  exitRoom(): void {
    this.calls.push({ method: 'exitRoom', args: [] });
  }
  setDefaultStreamRecvMode(autoRecvAudio: boolean, autoRecvVideo: boolean): void {
    this.calls.push({ method: 'setDefaultStreamRecvMode', args: [autoRecvAudio, autoRecvVideo] });
  }
  muteRemoteAudio(userId: string, mute: boolean): void {
    this.calls.push({ method: 'muteRemoteAudio', args: [userId, mute] });
  }
  startRemoteView(userId: string, view: null, streamType: number): void {
    this.calls.push({ method: 'startRemoteView', args: [userId, view, streamType] });
  }
  stopRemoteView(userId: string, streamType: number): void {
    this.calls.push({ method: 'stopRemoteView', args: [userId, streamType] });
  }
  setAudioFrameCallback(callback: TrtcAudioFrameCallback | null): void {
    this.calls.push({ method: 'setAudioFrameCallback', args: [callback] });
    this.audioCallback = callback;
  }
  setRemoteVideoRenderCallback(userId: string, pixelFormat: number, bufferType: number, callback: TrtcVideoRenderCallback | null): void {
    this.calls.push({ method: 'setRemoteVideoRenderCallback', args: [userId, pixelFormat, bufferType, callback] });
    if (callback) this.renderCallbacks.set(userId, callback);
    else this.renderCallbacks.delete(userId);
  }

  fire<E extends keyof TrtcCloudEvents>(event: E, ...args: Parameters<TrtcCloudEvents[E]>): void {
    this.emit(event, ...args);
  }
  methods(): string[] {
    return this.calls.map((call) => call.method);
  }
  callsTo(method: string): unknown[][] {
    return this.calls.filter((call) => call.method === method).map((call) => call.args);
  }
  listenersLeft(): number {
    return this.eventNames().reduce((sum, event) => sum + this.listenerCount(event), 0);
  }
}

function recordingListener() {
  const events: Array<[string, ...unknown[]]> = [];
  const record =
    (name: string) =>
    (...args: unknown[]) =>
      events.push([name, ...args]);
  const listener: RoomListener = {
    anchorJoined: record('anchorJoined'),
    anchorLeft: record('anchorLeft'),
    audioAvailable: record('audioAvailable'),
    videoAvailable: record('videoAvailable'),
    audioFrame: record('audioFrame'),
    videoFrame: record('videoFrame'),
    exited: record('exited'),
    error: record('error'),
  };
  return { events, listener };
}

const target: RoomTarget = { sdkAppId: 1400000001, userId: 'recorder', userSig: 'sig', roomId: 1234 };

async function enteredRoom(overrides: Partial<RoomTarget> = {}) {
  const cloud = new FakeTrtcCloud();
  const room = createTrtcElectronRoom({ loadSdk: () => ({ getTRTCShareInstance: () => cloud }) });
  const { events, listener } = recordingListener();
  const entered = room.enter({ ...target, ...overrides }, listener);
  cloud.fire('onEnterRoom', 230);
  await entered;
  return { cloud, room, events };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('trtc-electron-sdk room adapter', () => {
  it('enters a LIVE room as an audience member, receiving every stream, resolving on onEnterRoom', async () => {
    const cloud = new FakeTrtcCloud();
    const room = createTrtcElectronRoom({ loadSdk: () => ({ getTRTCShareInstance: () => cloud }) });
    let resolved = false;
    const entered = room.enter(target, recordingListener().listener).then(() => (resolved = true));

    expect(cloud.methods()).toEqual(['setDefaultStreamRecvMode', 'setAudioFrameCallback', 'enterRoom']);
    expect(cloud.callsTo('setDefaultStreamRecvMode')).toEqual([[true, true]]);
    expect(cloud.callsTo('enterRoom')).toEqual([
      [{ sdkAppId: 1400000001, userId: 'recorder', userSig: 'sig', roomId: 1234, strRoomId: '', role: 21 }, 1],
    ]);
    expect(cloud.audioCallback).toEqual({
      onPlayAudioFrame: expect.any(Function),
      onMixedPlayAudioFrame: null,
      onCapturedAudioFrame: null,
      onLocalProcessedAudioFrame: null,
      onMixedAllAudioFrame: null,
    });

    await Promise.resolve();
    expect(resolved).toBe(false);
    cloud.fire('onEnterRoom', 312);
    await entered;
    expect(resolved).toBe(true);
  });

  it('with a subscription, pulls and registers callbacks only for the anchors wanted', async () => {
    const cloud = new FakeTrtcCloud();
    const room = createTrtcElectronRoom({ loadSdk: () => ({ getTRTCShareInstance: () => cloud }) });
    const { events, listener } = recordingListener();
    const entered = room.enter(target, listener, { allow: ['teacher'] });
    cloud.fire('onEnterRoom', 100);
    await entered;
    expect(cloud.callsTo('setDefaultStreamRecvMode')).toEqual([[false, false]]);
    for (const userId of ['teacher', 'student']) {
      cloud.fire('onRemoteUserEnterRoom', userId);
      cloud.fire('onUserVideoAvailable', userId, 1);
    }
    expect(cloud.callsTo('muteRemoteAudio')).toEqual([['teacher', false]]);
    expect(cloud.callsTo('startRemoteView')).toEqual([['teacher', null, 0]]);
    expect([...cloud.renderCallbacks.keys()]).toEqual(['teacher']);
    // A stray audio frame of someone not subscribed to never reaches the recorder.
    const pcm = { audioFormat: 1, data: Buffer.alloc(1920), length: 1920, sampleRate: 48000, channel: 1, timestamp: 5 };
    cloud.audioCallback!.onPlayAudioFrame!(pcm, 'student');
    cloud.audioCallback!.onPlayAudioFrame!(pcm, 'teacher');
    expect(events.filter(([name]) => name === 'audioFrame').map(([, frame]) => (frame as { userId: string }).userId)).toEqual(['teacher']);
    // Presence still arrives for everyone.
    expect(events.filter(([name]) => name === 'anchorJoined').map(([, userId]) => userId)).toEqual(['teacher', 'student']);
    cloud.fire('onUserVideoAvailable', 'teacher', 0);
    expect(cloud.callsTo('stopRemoteView')).toEqual([['teacher', 0]]);
  });

  it('names a string room with roomId 0, and lets roomId win when both are given', async () => {
    const byName = await enteredRoom({ roomId: undefined, strRoomId: 'class-7' });
    expect(byName.cloud.callsTo('enterRoom')[0]![0]).toMatchObject({ roomId: 0, strRoomId: 'class-7' });
    const both = await enteredRoom({ roomId: 99, strRoomId: 'class-7' });
    expect(both.cloud.callsTo('enterRoom')[0]![0]).toMatchObject({ roomId: 99, strRoomId: '' });
  });

  it('rejects with RoomEnterFailed carrying the SDK code, and unregisters everything', async () => {
    const cloud = new FakeTrtcCloud();
    const room = createTrtcElectronRoom({ loadSdk: () => ({ getTRTCShareInstance: () => cloud }) });
    const { events, listener } = recordingListener();
    const entered = room.enter(target, listener);
    cloud.fire('onError', -100018, 'userSig check failed');
    cloud.fire('onEnterRoom', -100018);

    const error = await entered.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RoomEnterError);
    expect(error).toMatchObject({ code: 'RoomEnterFailed', trtcCode: -100018 });
    expect(events).toEqual([['error', -100018, 'userSig check failed']]);
    expect(cloud.listenersLeft()).toBe(0);
    expect(cloud.audioCallback).toBeNull();
  });

  it('maps room events and forwards copies of the frames, so the SDK may reuse its memory', async () => {
    const { cloud, events } = await enteredRoom();
    cloud.fire('onRemoteUserEnterRoom', 'alice');
    cloud.fire('onUserAudioAvailable', 'alice', 1);
    cloud.fire('onUserVideoAvailable', 'alice', 1);
    expect(cloud.callsTo('setRemoteVideoRenderCallback')).toEqual([['alice', 1, 1, expect.any(Object)]]);

    const pcm = new ArrayBuffer(1920);
    cloud.audioCallback!.onPlayAudioFrame!({ audioFormat: 1, data: pcm, length: 1920, sampleRate: 48000, channel: 1, timestamp: 1000 }, 'alice');
    const pcmBuffer = Buffer.alloc(3840);
    cloud.audioCallback!.onPlayAudioFrame!({ audioFormat: 1, data: pcmBuffer, length: 3840, sampleRate: 48000, channel: 2, timestamp: 1020 }, 'alice');
    const picture = new ArrayBuffer(6 * 4 * 1.5 + 8);
    const frame: TrtcVideoFrame = { videoFormat: 1, bufferType: 1, data: picture, length: 36, width: 6, height: 4, timestamp: 1005, rotation: 0 };
    const render = cloud.renderCallbacks.get('alice')!;
    render.onRenderVideoFrame('alice', 0, frame);
    render.onRenderVideoFrame('alice', 1, frame); // small stream: not recorded

    cloud.fire('onUserVideoAvailable', 'alice', 0);
    expect(cloud.callsTo('setRemoteVideoRenderCallback')[1]).toEqual(['alice', 0, 0, null]);
    cloud.fire('onUserAudioAvailable', 'alice', 0);
    cloud.fire('onRemoteUserLeaveRoom', 'alice', 0);
    cloud.fire('onError', -1308, 'screen capture failed');

    expect(events.map(([name, ...args]) => [name, ...(name.endsWith('Frame') ? [] : args)])).toEqual([
      ['anchorJoined', 'alice'],
      ['audioAvailable', 'alice', true],
      ['videoAvailable', 'alice', true],
      ['audioFrame'],
      ['audioFrame'],
      ['videoFrame'],
      ['videoAvailable', 'alice', false],
      ['audioAvailable', 'alice', false],
      ['anchorLeft', 'alice'],
      ['error', -1308, 'screen capture failed'],
    ]);
    const [audio1, audio2, video] = events.filter(([name]) => name.endsWith('Frame')).map(([, payload]) => payload as Record<string, unknown>);
    expect(audio1).toMatchObject({ userId: 'alice', sampleRate: 48000, channels: 1, timestampMs: 1000 });
    expect((audio1!.data as Buffer).buffer).not.toBe(pcm);
    expect((audio1!.data as Buffer).length).toBe(1920);
    expect((audio2!.data as Buffer).buffer).not.toBe(pcmBuffer.buffer);
    expect(video).toMatchObject({ userId: 'alice', width: 6, height: 4, timestampMs: 1005 });
    expect((video!.data as Buffer).buffer).not.toBe(picture);
    expect((video!.data as Buffer).length).toBe(36);
    // The SDK overwriting its buffer after the callback changes nothing we hold.
    new Uint8Array(picture).fill(99);
    expect((video!.data as Buffer).every((byte) => byte !== 99)).toBe(true);
  });

  it.each([
    [1, 'kicked'],
    [2, 'dismissed'],
  ])('onExitRoom(%i) ends as %s and unregisters every callback', async (reason, expected) => {
    const { cloud, events } = await enteredRoom();
    cloud.fire('onUserVideoAvailable', 'alice', true);
    const render = cloud.renderCallbacks.get('alice')!;
    const onPlayAudioFrame = cloud.audioCallback!.onPlayAudioFrame!;
    cloud.fire('onExitRoom', reason);

    expect(events.at(-1)).toEqual(['exited', expected]);
    expect(cloud.listenersLeft()).toBe(0);
    expect(cloud.audioCallback).toBeNull();
    expect(cloud.renderCallbacks.size).toBe(0);
    // Frames the SDK had already queued are dropped: nothing follows exited.
    render.onRenderVideoFrame('alice', 0, { videoFormat: 1, bufferType: 1, data: new ArrayBuffer(6), length: 6, width: 2, height: 2, timestamp: 1, rotation: 0 });
    onPlayAudioFrame({ audioFormat: 1, data: new ArrayBuffer(4), length: 4, sampleRate: 48000, channel: 1, timestamp: 1 }, 'alice');
    expect(events.at(-1)).toEqual(['exited', expected]);
  });

  it('leave() calls exitRoom and resolves on onExitRoom(0) with exited("left")', async () => {
    const { cloud, room, events } = await enteredRoom();
    const left = room.leave();
    expect(cloud.methods().at(-1)).toBe('exitRoom');
    cloud.fire('onExitRoom', 0);
    await left;
    expect(events).toEqual([['exited', 'left']]);
    await room.leave();
    expect(cloud.callsTo('exitRoom')).toHaveLength(1);
  });

  it('leave() gives up waiting for onExitRoom after a few seconds', async () => {
    vi.useFakeTimers();
    const { cloud, room, events } = await enteredRoom();
    const left = room.leave();
    await vi.advanceTimersByTimeAsync(5_000);
    await left;
    expect(events).toEqual([['exited', 'left']]);
    expect(cloud.listenersLeft()).toBe(0);
  });

  it('says the SDK is not installed when it is missing, and when it cannot load', () => {
    // trtc-electron-sdk is deliberately not installed here, so this is the real require.
    const missing = (() => {
      try {
        createTrtcElectronRoom();
      } catch (error) {
        return error;
      }
    })();
    expect(missing).toBeInstanceOf(MediaError);
    expect(missing).toMatchObject({ code: 'TrtcSdkUnavailable' });
    expect((missing as Error).message).toMatch(/trtc-electron-sdk is not installed.*Electron host/);

    const wrongHost = () =>
      createTrtcElectronRoom({
        loadSdk: () => {
          throw new Error('The module was compiled against a different Node.js version');
        },
      });
    expect(wrongHost).toThrow(expect.objectContaining({ code: 'TrtcSdkUnavailable', message: expect.stringMatching(/could not be loaded.*Electron host.*different Node/) }));
  });
});
