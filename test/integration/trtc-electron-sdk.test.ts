/**
 * The Electron room adapter (shared/sources/trtc-electron-room.ts) against Tencent's own
 * JavaScript: trtc-electron-sdk 13.3.801 from npm (a devDependency whose install script, the addon
 * download, is denied in package.json's allowScripts), required by the adapter as in production;
 * only its native addon is a double (test/support/trtc-electron-addon.ts), which records what
 * Tencent's code asks of the native side and calls back as the native side would.
 */
import { createRequire } from 'node:module';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RoomTarget } from '../../shared/sources/room-source';
import { createTrtcElectronRoom, RoomEnterError } from '../../shared/sources/trtc-electron-room';
import { recordingListener } from '../support/room-listener';
import { forgetTrtcElectronSdk, installAddonDouble, type AddonDouble, type NativeCloudDouble } from '../support/trtc-electron-addon';

const target: RoomTarget = { sdkAppId: 1400000001, userId: 'recorder', userSig: 'sig', roomId: 1234 };
let addon: AddonDouble;

beforeEach(() => {
  addon = installAddonDouble();
});
afterEach(() => addon.uninstall());


const callsTo = (native: NativeCloudDouble, method: string) => native.calls.filter((call) => call.method === method).map((call) => call.args);

async function enteredRoom(subscription?: { allow?: string[]; deny?: string[] }, overrides: Partial<RoomTarget> = {}) {
  const room = createTrtcElectronRoom();
  const { events, listener } = recordingListener();
  const entered = room.enter({ ...target, ...overrides }, listener, subscription);
  const native = addon.natives.at(-1)!;
  await native.fire('onEnterRoom', { result: 230 });
  await entered;
  return { room, events, native };
}

describe('Tencent\'s trtc-electron-sdk JavaScript outside a page', () => {
  it('cannot even be required as published (it probes WebGL through `document`); the adapter loads it with stand-ins its modules alone see', () => {
    const plain = () => createRequire(__filename)('trtc-electron-sdk');
    expect(plain).toThrow('document is not defined');
    forgetTrtcElectronSdk();

    const room = createTrtcElectronRoom();
    expect(room).toBeDefined();
    // No global `window` or `document` left behind for other code to mistake this process for a browser.
    expect(typeof (globalThis as { window?: unknown }).window).toBe('undefined');
    expect(typeof (globalThis as { document?: unknown }).document).toBe('undefined');
  });

  it('without its native addon: TrtcSdkUnavailable saying so', () => {
    addon.uninstall();
    expect(() => createTrtcElectronRoom()).toThrow(
      expect.objectContaining({ code: 'TrtcSdkUnavailable', message: expect.stringContaining('installed without its native addon') }),
    );
  });
});

describe('the adapter against Tencent\'s JavaScript (native addon replaced by a double)', () => {
  it('enters a LIVE room as an audience member with the SDK\'s own TRTCParams, receiving every stream; the entry callback needs `window` and gets it', async () => {
    const room = createTrtcElectronRoom();
    const entered = room.enter(target, recordingListener().listener);
    const native = addon.natives.at(-1)!;
    expect(callsTo(native, 'setDefaultStreamRecvMode')).toEqual([[true, true]]);
    const [params, scene] = callsTo(native, 'enterRoom')[0]!;
    expect(params).toMatchObject({ sdkAppId: 1400000001, userId: 'recorder', userSig: 'sig', roomId: 1234, strRoomId: '', role: 21 });
    expect(scene).toBe(1);
    // Tencent's setAudioFrameCallback hands the addon five functions, per-user playback audio third.
    expect(callsTo(native, 'setAudioFrameCallback')[0]!.map((fn) => typeof fn)).toEqual(['object', 'object', 'function', 'object', 'object']);

    await native.fire('onEnterRoom', { result: 312 });
    await entered;
    // handleOnEnterRoom read window.navigator.userAgent and reported it through the addon.
    const report = callsTo(native, 'callExperimentalAPI').map(([json]) => JSON.parse(json as string) as { api: string; params: { more_msg?: string } });
    expect(report.find((call) => call.api === 'reportOnlineLog')?.params.more_msg).toContain('Node.js/');
  });

  it('names a string room with roomId 0, and lets roomId win when both are given', async () => {
    const byName = await enteredRoom(undefined, { roomId: undefined, strRoomId: 'class-7' });
    expect(callsTo(byName.native, 'enterRoom')[0]![0]).toMatchObject({ roomId: 0, strRoomId: 'class-7' });
    addon.uninstall();
    addon = installAddonDouble();
    const both = await enteredRoom(undefined, { roomId: 99, strRoomId: 'class-7' });
    expect(callsTo(both.native, 'enterRoom')[0]![0]).toMatchObject({ roomId: 99, strRoomId: '' });
  });

  it('maps room events, and hands over copies of the pictures and PCM the native side writes', async () => {
    const { events, native } = await enteredRoom();
    await native.fire('onRemoteUserEnterRoom', { userId: 'alice' });
    await native.fire('onUserAudioAvailable', { userId: 'alice', available: true });
    await native.fire('onUserVideoAvailable', { userId: 'alice', available: true });
    // startRemoteView(…, null, …) is what gives the native side a frame buffer and a render callback.
    expect(callsTo(native, 'startRemoteView')).toEqual([['alice', 0]]);
    expect(callsTo(native, 'addRemoteVideoRenderCallback')[0]![0]).toBe('alice');

    const picture = Buffer.alloc(8 * 4 * 1.5, 7);
    native.renderPicture('alice', picture, 8, 4, 1005);
    const bigger = Buffer.alloc(16 * 8 * 1.5, 9);
    native.renderPicture('alice', bigger, 16, 8, 1072);
    native.playAudio({ audioFormat: 1, data: Buffer.alloc(1920, 3), length: 1920, sampleRate: 48000, channel: 1, timestamp: 1000 }, 'alice');

    await native.fire('onUserVideoAvailable', { userId: 'alice', available: false });
    await native.fire('onRemoteUserLeaveRoom', { userId: 'alice', reason: 0 });
    await native.fire('onError', { errCode: -1308, errMsg: 'screen capture failed' });

    expect(events.map(([name, ...args]) => [name, ...(name.endsWith('Frame') ? [] : args)])).toEqual([
      ['anchorJoined', 'alice'],
      ['audioAvailable', 'alice', true],
      ['videoAvailable', 'alice', true],
      ['videoFrame'],
      ['videoFrame'],
      ['audioFrame'],
      ['videoAvailable', 'alice', false],
      ['anchorLeft', 'alice'],
      ['error', -1308, 'screen capture failed'],
    ]);
    const [first, second, audio] = events.filter(([name]) => name.endsWith('Frame')).map(([, payload]) => payload as { data: Buffer; width?: number; height?: number; timestampMs: number });
    expect(first).toMatchObject({ width: 8, height: 4, timestampMs: 1005 });
    expect(first!.data.equals(picture)).toBe(true);
    expect(second).toMatchObject({ width: 16, height: 8, timestampMs: 1072 });
    expect(second!.data.equals(bigger)).toBe(true);
    expect(audio).toMatchObject({ userId: 'alice', sampleRate: 48000, channels: 1, timestampMs: 1000 });
    // The native side reuses its frame buffer: what we hold does not change.
    native.videoBuffers.get('alice')?.buffer.fill(99);
    expect(second!.data.every((byte) => byte === 9)).toBe(true);
    expect(callsTo(native, 'stopRemoteView')).toEqual([['alice', 0]]);
  });

  it('with a subscription, pulls only the anchors wanted, still telling who is in the room', async () => {
    const { events, native } = await enteredRoom({ allow: ['teacher'] });
    expect(callsTo(native, 'setDefaultStreamRecvMode')).toEqual([[false, false]]);
    for (const userId of ['teacher', 'student']) {
      await native.fire('onRemoteUserEnterRoom', { userId });
      await native.fire('onUserVideoAvailable', { userId, available: true });
    }
    expect(callsTo(native, 'muteRemoteAudio')).toEqual([['teacher', false]]);
    expect(callsTo(native, 'startRemoteView')).toEqual([['teacher', 0]]);
    const pcm = { audioFormat: 1, data: Buffer.alloc(1920), length: 1920, sampleRate: 48000, channel: 1, timestamp: 5 };
    native.playAudio(pcm, 'student');
    native.playAudio(pcm, 'teacher');
    expect(events.filter(([name]) => name === 'audioFrame').map(([, frame]) => (frame as { userId: string }).userId)).toEqual(['teacher']);
    expect(events.filter(([name]) => name === 'anchorJoined').map(([, userId]) => userId)).toEqual(['teacher', 'student']);
  });

  it('rejects with RoomEnterFailed carrying the SDK code, and unregisters its audio callback', async () => {
    const room = createTrtcElectronRoom();
    const { events, listener } = recordingListener();
    const failed = room.enter(target, listener).catch((e: unknown) => e);
    const native = addon.natives.at(-1)!;
    await native.fire('onError', { errCode: -100018, errMsg: 'userSig check failed' });
    await native.fire('onEnterRoom', { result: -100018 });
    const error = await failed;
    expect(error).toBeInstanceOf(RoomEnterError);
    expect(error).toMatchObject({ code: 'RoomEnterFailed', trtcCode: -100018 });
    expect(events).toEqual([['error', -100018, 'userSig check failed']]);
    expect(callsTo(native, 'setAudioFrameCallback').at(-1)).toEqual([null, null, null, null, null]);
  });

  it('no answer from the SDK: RoomEnterFailed after the enter timeout', async () => {
    const room = createTrtcElectronRoom({ enterTimeoutMs: 200 });
    await expect(room.enter(target, recordingListener().listener)).rejects.toMatchObject({
      code: 'RoomEnterFailed',
      message: 'entering the TRTC room failed: the SDK gave no answer in 0.2 s',
    });
  });

  it.each([
    [1, 'kicked'],
    [2, 'dismissed'],
  ])('onExitRoom(%i) ends as %s, and no frame follows', async (reason, expected) => {
    const { events, native } = await enteredRoom();
    await native.fire('onUserVideoAvailable', { userId: 'alice', available: true });
    await native.fire('onExitRoom', { reason });
    expect(events.at(-1)).toEqual(['exited', expected]);
    expect(callsTo(native, 'setAudioFrameCallback').at(-1)).toEqual([null, null, null, null, null]);
    // A picture the native side had already decoded is dropped.
    native.renderPicture('alice', Buffer.alloc(6), 2, 2, 1);
    expect(events.at(-1)).toEqual(['exited', expected]);
  });

  it('leave() calls exitRoom and resolves on onExitRoom(0) with exited("left")', async () => {
    const { room, events, native } = await enteredRoom();
    const left = room.leave();
    expect(callsTo(native, 'exitRoom')).toHaveLength(1);
    await native.fire('onExitRoom', { reason: 0 });
    await left;
    expect(events).toEqual([['exited', 'left']]);
  });
});
