import { MediaError } from '../errors';
import { isSubscribed, type RoomExitReason, type RoomListener, type RoomSource, type RoomTarget, type Subscription } from './room-source';
import {
  TRTC_APP_SCENE_LIVE,
  TRTC_BUFFER_TYPE_BUFFER,
  TRTC_BUFFER_TYPE_UNKNOWN,
  TRTC_EXIT_DISMISSED,
  TRTC_EXIT_KICKED,
  TRTC_EXIT_LEFT,
  TRTC_PIXEL_FORMAT_I420,
  TRTC_PIXEL_FORMAT_UNKNOWN,
  TRTC_ROLE_AUDIENCE,
  TRTC_VIDEO_STREAM_BIG,
  type TrtcAudioFrameCallback,
  type TrtcCloud,
  type TrtcCloudEvents,
  type TrtcSdkModule,
  type TrtcVideoRenderCallback,
} from './trtc-electron-types';
import { requireTrtcElectronSdk } from './trtc-electron-load';

export interface TrtcElectronRoomOptions {
  /** Replaces `require('trtc-electron-sdk')`; for tests. */
  loadSdk?: () => TrtcSdkModule;
  /** No onEnterRoom within this: RoomEnterFailed. */
  enterTimeoutMs?: number;
}

/** Entering failed; `trtcCode` is the SDK's (negative) error code from `onEnterRoom`. */
export class RoomEnterError extends MediaError {
  constructor(readonly trtcCode: number) {
    super('RoomEnterFailed', `entering the TRTC room failed with error ${trtcCode}`);
  }
}

/** How long `leave()` waits for the SDK's `onExitRoom(0)`: a deadline-driven stop must not hang. */
const EXIT_CONFIRM_TIMEOUT_MS = 5_000;
const DEFAULT_ENTER_TIMEOUT_MS = 30_000;
/** setAudioFrameCallback with nothing to call: the SDK reads each member, so null itself would throw. */
const NO_AUDIO_FRAMES: TrtcAudioFrameCallback = {
  onPlayAudioFrame: null,
  onMixedPlayAudioFrame: null,
  onCapturedAudioFrame: null,
  onLocalProcessedAudioFrame: null,
  onMixedAllAudioFrame: null,
};

/**
 * The production room source. The SDK is required here, not at the top of the module: it is
 * an optional dependency that only an Electron host can load, and everything else (tests,
 * the simulator, local runs) must work without it.
 */
export function createTrtcElectronRoom(options: TrtcElectronRoomOptions = {}): RoomSource {
  let sdk: TrtcSdkModule;
  try {
    sdk = (options.loadSdk ?? requireTrtcElectronSdk)();
  } catch (error) {
    throw sdkUnavailable(error);
  }
  return new TrtcElectronRoom(sdk, options.enterTimeoutMs ?? DEFAULT_ENTER_TIMEOUT_MS);
}

function sdkUnavailable(error: unknown): MediaError {
  const notFound = (error as { code?: unknown } | null)?.code === 'MODULE_NOT_FOUND';
  const detail = error instanceof Error ? error.message : String(error);
  const message = !notFound
    ? `trtc-electron-sdk could not be loaded; it needs an Electron host to run its native addon (${detail})`
    : detail.includes('trtc_electron_sdk.node')
      ? 'trtc-electron-sdk is installed without its native addon (its install script downloads it from Tencent): recording a TRTC room needs it, and an Electron host to run it'
      : 'trtc-electron-sdk is not installed; recording a TRTC room needs it, and an Electron host to run its native addon';
  return new MediaError('TrtcSdkUnavailable', message, { cause: error });
}

const EXIT_REASONS: Record<number, RoomExitReason> = {
  [TRTC_EXIT_LEFT]: 'left',
  [TRTC_EXIT_KICKED]: 'kicked',
  [TRTC_EXIT_DISMISSED]: 'dismissed',
};

/**
 * A copy of a frame: the recorder keeps pictures after the callback returns (the latest is sent
 * again until a new one comes), and the SDK may reuse its buffer once the callback is done.
 */
function copyFrame(data: Buffer | ArrayBuffer, length: number): Buffer {
  return Buffer.from(Buffer.isBuffer(data) ? data.subarray(0, length) : new Uint8Array(data, 0, length));
}

/** Enters as an audience member of a LIVE room and forwards each anchor's raw frames. */
class TrtcElectronRoom implements RoomSource {
  /** Set from `enter()` until out of the room. */
  private cloud: TrtcCloud | undefined;
  private listener!: RoomListener;
  private entering: { resolve(): void; reject(error: Error): void; timer: NodeJS.Timeout } | undefined;
  private exitConfirmed: (() => void) | undefined;
  /** Users whose frames a render callback is registered for. */
  private readonly videoUsers = new Set<string>();
  /** Set when only some anchors are received: streams are then pulled one by one. */
  private subscription: Subscription | undefined;

  constructor(
    private readonly sdk: TrtcSdkModule,
    private readonly enterTimeoutMs: number,
  ) {}

  private readonly handlers: TrtcCloudEvents = {
    // result: the time entering took (ms), or a negative error code.
    onEnterRoom: (result) => {
      const entering = this.entering;
      this.entering = undefined;
      clearTimeout(entering?.timer);
      if (result >= 0) return entering?.resolve();
      this.detach();
      entering?.reject(new RoomEnterError(result));
    },
    // An unknown reason can only come from the server's side, which is what a kick is.
    onExitRoom: (reason) => this.exit(EXIT_REASONS[reason] ?? 'kicked'),
    onRemoteUserEnterRoom: (userId) => {
      this.listener.anchorJoined(userId);
      if (this.subscription && isSubscribed(this.subscription, userId)) this.cloud?.muteRemoteAudio(userId, false);
    },
    onRemoteUserLeaveRoom: (userId) => this.listener.anchorLeft(userId),
    onUserAudioAvailable: (userId, available) => this.listener.audioAvailable(userId, Boolean(available)),
    onUserVideoAvailable: (userId, available) => this.setVideoAvailable(userId, Boolean(available)),
    onError: (errCode, errMsg) => this.listener.error(errCode, errMsg),
  };

  private readonly renderer: TrtcVideoRenderCallback = {
    onRenderVideoFrame: (userId, streamType, frame) => {
      // Only the main camera stream; a frame already queued when we left is dropped.
      if (streamType !== TRTC_VIDEO_STREAM_BIG || !this.cloud) return;
      this.listener.videoFrame({
        userId,
        data: copyFrame(frame.data, frame.length),
        width: frame.width,
        height: frame.height,
        timestampMs: frame.timestamp,
      });
    },
  };

  enter(target: RoomTarget, listener: RoomListener, subscription?: Subscription): Promise<void> {
    if (this.cloud) return Promise.reject(new MediaError('RoomEnterFailed', 'already in a TRTC room; leave it first'));
    const cloud = this.sdk.default.getTRTCShareInstance();
    this.cloud = cloud;
    this.listener = listener;
    this.subscription = subscription;
    for (const event of Object.keys(this.handlers) as Array<keyof TrtcCloudEvents>) cloud.on(event, this.handlers[event]);
    // Only some anchors wanted: receive nothing by default, then pull each wanted stream.
    const receiveAll = !subscription?.allow && !subscription?.deny?.length;
    cloud.setDefaultStreamRecvMode(receiveAll, receiveAll);
    if (receiveAll) this.subscription = undefined;
    cloud.setAudioFrameCallback({
      onPlayAudioFrame: (frame, userId) => {
        if (!this.cloud || !isSubscribed(this.subscription, userId)) return;
        listener.audioFrame({
          userId,
          data: copyFrame(frame.data, frame.length),
          sampleRate: frame.sampleRate,
          channels: frame.channel,
          timestampMs: frame.timestamp,
        });
      },
      onMixedPlayAudioFrame: null,
      onCapturedAudioFrame: null,
      onLocalProcessedAudioFrame: null,
      onMixedAllAudioFrame: null,
    });
    const byNumber = target.roomId !== undefined;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.detach();
        this.entering = undefined;
        reject(new MediaError('RoomEnterFailed', `entering the TRTC room failed: the SDK gave no answer in ${this.enterTimeoutMs / 1000} s`));
      }, this.enterTimeoutMs);
      this.entering = { resolve, reject, timer };
      // The SDK's own class: enterRoom() ignores plain objects (it logs an error and does nothing).
      const params = new this.sdk.TRTCParams(
        target.sdkAppId,
        target.userId,
        target.userSig,
        byNumber ? target.roomId! : 0,
        byNumber ? '' : (target.strRoomId ?? ''),
        TRTC_ROLE_AUDIENCE,
      );
      cloud.enterRoom(params, TRTC_APP_SCENE_LIVE);
    });
  }

  async leave(): Promise<void> {
    const cloud = this.cloud;
    if (!cloud) return;
    let timer: NodeJS.Timeout | undefined;
    const confirmed = new Promise<void>((resolve) => {
      this.exitConfirmed = resolve;
      timer = setTimeout(resolve, EXIT_CONFIRM_TIMEOUT_MS);
    });
    cloud.exitRoom();
    await confirmed;
    clearTimeout(timer);
    this.exit('left');
  }

  private setVideoAvailable(userId: string, available: boolean): void {
    const cloud = this.cloud!;
    // Not received: no render callback, no stream pulled; only the event is passed on.
    if (!isSubscribed(this.subscription, userId)) return this.listener.videoAvailable(userId, available);
    // startRemoteView(userId, null, …) even when streams are received by default: it is what makes
    // the SDK hand its decoded frames over (a frame buffer and the native render callback), and null
    // renders them nowhere.
    if (available) {
      this.listener.videoAvailable(userId, true);
      this.videoUsers.add(userId);
      cloud.setRemoteVideoRenderCallback(userId, TRTC_PIXEL_FORMAT_I420, TRTC_BUFFER_TYPE_BUFFER, this.renderer);
      cloud.startRemoteView(userId, null, TRTC_VIDEO_STREAM_BIG);
    } else {
      this.videoUsers.delete(userId);
      cloud.stopRemoteView(userId, TRTC_VIDEO_STREAM_BIG);
      cloud.setRemoteVideoRenderCallback(userId, TRTC_PIXEL_FORMAT_UNKNOWN, TRTC_BUFFER_TYPE_UNKNOWN, null);
      this.listener.videoAvailable(userId, false);
    }
  }

  private exit(reason: RoomExitReason): void {
    if (!this.cloud) return;
    this.detach();
    this.exitConfirmed?.();
    this.exitConfirmed = undefined;
    if (this.entering) {
      // Never got in: the caller learns it from enter(), not from exited().
      clearTimeout(this.entering.timer);
      this.entering.reject(new MediaError('RoomEnterFailed', `out of the TRTC room (${reason}) before entering completed`));
      this.entering = undefined;
    } else {
      this.listener.exited(reason);
    }
  }

  /** Unregisters everything, so the shared SDK instance is clean for the next room. */
  private detach(): void {
    const cloud = this.cloud;
    if (!cloud) return;
    this.cloud = undefined;
    for (const event of Object.keys(this.handlers) as Array<keyof TrtcCloudEvents>) cloud.off(event, this.handlers[event]);
    cloud.setAudioFrameCallback(NO_AUDIO_FRAMES);
    for (const userId of this.videoUsers) {
      cloud.setRemoteVideoRenderCallback(userId, TRTC_PIXEL_FORMAT_UNKNOWN, TRTC_BUFFER_TYPE_UNKNOWN, null);
    }
    this.videoUsers.clear();
  }
}
