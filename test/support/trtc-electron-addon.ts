import Module, { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';

/**
 * trtc-electron-sdk's own JavaScript (the devDependency, installed with its install script denied
 * in package.json's allowScripts, so without its native addon), loaded with only the addon
 * replaced: `liteav/trtc.js` requires `../build/Release/trtc_electron_sdk.node`, and that one
 * require gets a double that records every call Tencent's code makes into it and lets a test fire
 * what the native side would call back.
 */

export interface AddonCall {
  method: string;
  args: unknown[];
}

/** The double of `NodeTRTCCloud`, the addon's object behind Tencent's `TRTCCloud`. */
export class NativeCloudDouble {
  readonly calls: AddonCall[] = [];
  /** What trtc.js registered for the native side to call. */
  eventCallback: ((args: [string, Record<string, unknown>]) => void) | undefined;
  audioCallbacks: Array<((...args: unknown[]) => void) | null> = [];
  readonly videoCallbacks = new Map<string, (args: unknown[]) => void>();
  /** The frame buffers trtc.js handed over per user (setRemoteVideoBuffer): the native side writes pictures into them. */
  readonly videoBuffers = new Map<string, { buffer: Buffer; streamType: number; width: number; height: number; id: number }>();

  constructor(readonly config: unknown) {
    // Any method trtc.js calls is recorded; the few whose results it uses answer as the addon would.
    return new Proxy(this, {
      get: (target, name, receiver) => {
        if (typeof name !== 'string' || name in target) return Reflect.get(target, name, receiver);
        return (...args: unknown[]) => {
          target.calls.push({ method: name, args });
          return name === 'getSDKVersion' ? '13.3.801-double' : 0;
        };
      },
    });
  }

  setTRTCCloudCallback(callback: (args: [string, Record<string, unknown>]) => void): void {
    this.calls.push({ method: 'setTRTCCloudCallback', args: [callback] });
    this.eventCallback = callback;
  }

  setAudioFrameCallback(...callbacks: Array<((...args: unknown[]) => void) | null>): void {
    this.calls.push({ method: 'setAudioFrameCallback', args: callbacks });
    this.audioCallbacks = callbacks;
  }

  addRemoteVideoRenderCallback(userId: string, callback: (args: unknown[]) => void, pixelFormat: number): void {
    this.calls.push({ method: 'addRemoteVideoRenderCallback', args: [userId, callback, pixelFormat] });
    this.videoCallbacks.set(userId, callback);
  }

  removeRemoteVideoRenderCallback(userId: string): void {
    this.calls.push({ method: 'removeRemoteVideoRenderCallback', args: [userId] });
    this.videoCallbacks.delete(userId);
  }

  setRemoteVideoBuffer(userId: string, buffer: Buffer | null, streamType: number, width: number, height: number, pixelFormat: number, id: number): void {
    this.calls.push({ method: 'setRemoteVideoBuffer', args: [userId, buffer, streamType, width, height, pixelFormat, id] });
    if (buffer && width > 0) this.videoBuffers.set(userId, { buffer, streamType, width, height, id });
    else this.videoBuffers.delete(userId);
  }

  /**
   * What the native side does on an event: trtc.js's callback gets [name, data]. trtc.js emits it to
   * its listeners on a setImmediate (frames, by contrast, reach their callbacks at once): resolves after.
   */
  fire(name: string, data: Record<string, unknown>): Promise<void> {
    this.eventCallback!([name, data]);
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** A decoded remote picture: written into the buffer trtc.js gave for the user (resized first, as the addon asks), then announced. */
  renderPicture(userId: string, picture: Buffer, width: number, height: number, timestamp: number): void {
    const callback = this.videoCallbacks.get(userId);
    if (!callback) throw new Error(`no render callback registered for ${userId}`);
    let target = this.videoBuffers.get(userId);
    if (!target || target.width !== width || target.height !== height) {
      // valid=false: the size changed; trtc.js allocates a new buffer and hands it over.
      callback([userId, 0, width, height, timestamp, 0, false, target?.id ?? 0]);
      target = this.videoBuffers.get(userId);
    }
    picture.copy(target!.buffer);
    callback([userId, target!.streamType, width, height, timestamp, 0, true, target!.id]);
  }

  /** A remote user's PCM, as the addon calls onPlayAudioFrame (third of setAudioFrameCallback's functions). */
  playAudio(frame: Record<string, unknown>, userId: string): void {
    const onPlayAudioFrame = this.audioCallbacks[2];
    if (!onPlayAudioFrame) throw new Error('no onPlayAudioFrame registered');
    onPlayAudioFrame(frame, userId);
  }

  methods(): string[] {
    return this.calls.map((call) => call.method);
  }
}

export interface AddonDouble {
  /** The native clouds trtc.js created, newest last. */
  natives: NativeCloudDouble[];
  /** Restores module resolution and drops the SDK from the require cache. */
  uninstall(): void;
}

/** How the SDK's modules name their addon, from any depth (`../build/…`, `../../../build/…`). */
const ADDON_REQUEST = /^(\.\.\/)+build\/Release\/trtc_electron_sdk\.node$/;
const moduleInternals = Module as unknown as {
  _resolveFilename: (request: string, parent: { filename?: string } | undefined, ...rest: unknown[]) => string;
  _cache: Record<string, unknown>;
};
const sdkDir = () => dirname(createRequire(__filename).resolve('trtc-electron-sdk/package.json')) + sep;

/** Drops the SDK's JavaScript from Node's require cache: the next require loads a fresh copy (a new shared TRTCCloud). */
export function forgetTrtcElectronSdk(): void {
  for (const key of Object.keys(moduleInternals._cache)) if (key.startsWith(sdkDir()) && key.endsWith('.js')) delete moduleInternals._cache[key];
}

/**
 * From now until uninstall(), `require('trtc-electron-sdk')` (the adapter's own, unchanged) loads
 * a fresh copy of Tencent's JavaScript whose one require of its native addon gets the double.
 */
export function installAddonDouble(): AddonDouble {
  const packageDir = sdkDir();
  const natives: NativeCloudDouble[] = [];
  const addon = {
    NodeTRTCCloud: class {
      constructor(config: unknown) {
        const native = new NativeCloudDouble(config);
        natives.push(native);
        return native;
      }
    },
    NodeRemoteTRTCCloud: class {
      constructor() {
        throw new Error('the cross-process mode is not used by the recorder');
      }
    },
    setRemoteTrtcWithAcrossProcessMode: () => undefined,
  };
  const addonPath = join(packageDir, 'build', 'Release', 'trtc_electron_sdk.node');
  const resolve = moduleInternals._resolveFilename;
  moduleInternals._resolveFilename = function (request, parent, ...rest) {
    if (ADDON_REQUEST.test(request) && parent?.filename?.startsWith(packageDir)) return addonPath;
    return resolve.call(this, request, parent, ...rest);
  };
  forgetTrtcElectronSdk();
  const cached = new Module(addonPath);
  cached.filename = addonPath;
  cached.loaded = true;
  cached.exports = addon;
  moduleInternals._cache[addonPath] = cached;
  return {
    natives,
    uninstall: () => {
      moduleInternals._resolveFilename = resolve;
      delete moduleInternals._cache[addonPath];
      forgetTrtcElectronSdk();
    },
  };
}
