/**
 * The part of trtc-electron-sdk (13.3.x) the room adapter uses, declared here from its published
 * type declarations and code (test/integration/trtc-electron-sdk.test.ts runs the adapter against
 * that code, its native addon replaced by a double), so the build never needs the package.
 */

export const TRTC_APP_SCENE_LIVE = 1;
export const TRTC_ROLE_AUDIENCE = 21;
export const TRTC_VIDEO_STREAM_BIG = 0;
export const TRTC_PIXEL_FORMAT_I420 = 1;
export const TRTC_BUFFER_TYPE_BUFFER = 1;
/** `setRemoteVideoRenderCallback(userId, UNKNOWN, UNKNOWN, null)` stops a user's frames. */
export const TRTC_PIXEL_FORMAT_UNKNOWN = 0;
export const TRTC_BUFFER_TYPE_UNKNOWN = 0;

/** `onExitRoom` reasons. */
export const TRTC_EXIT_LEFT = 0;
export const TRTC_EXIT_KICKED = 1;
export const TRTC_EXIT_DISMISSED = 2;

export interface TrtcParams {
  sdkAppId: number;
  userId: string;
  userSig: string;
  /** 0 when the room is named by `strRoomId`. */
  roomId: number;
  strRoomId: string;
  role: number;
}

export interface TrtcAudioFrame {
  /** 1: PCM, 16-bit. */
  audioFormat: number;
  data: Buffer | ArrayBuffer;
  length: number;
  sampleRate: number;
  channel: number;
  timestamp: number;
}

export interface TrtcVideoFrame {
  videoFormat: number;
  bufferType: number;
  data: ArrayBuffer;
  length: number;
  width: number;
  height: number;
  timestamp: number;
  rotation: number;
}

type AudioFrameHandler = (frame: TrtcAudioFrame, userId?: string) => void;

/** Every member must be given; null for the frames not wanted. */
export interface TrtcAudioFrameCallback {
  onPlayAudioFrame: ((frame: TrtcAudioFrame, userId: string) => void) | null;
  onMixedPlayAudioFrame: AudioFrameHandler | null;
  onCapturedAudioFrame: AudioFrameHandler | null;
  onLocalProcessedAudioFrame: AudioFrameHandler | null;
  onMixedAllAudioFrame: AudioFrameHandler | null;
}

export interface TrtcVideoRenderCallback {
  onRenderVideoFrame(userId: string, streamType: number, frame: TrtcVideoFrame): void;
}

/** Event name → listener arguments. `available` arrives as 1/0. */
export interface TrtcCloudEvents {
  onEnterRoom: (result: number) => void;
  onExitRoom: (reason: number) => void;
  onRemoteUserEnterRoom: (userId: string) => void;
  onRemoteUserLeaveRoom: (userId: string, reason: number) => void;
  onUserAudioAvailable: (userId: string, available: number | boolean) => void;
  onUserVideoAvailable: (userId: string, available: number | boolean) => void;
  onError: (errCode: number, errMsg: string) => void;
}

export interface TrtcCloud {
  on<E extends keyof TrtcCloudEvents>(event: E, listener: TrtcCloudEvents[E]): unknown;
  off<E extends keyof TrtcCloudEvents>(event: E, listener: TrtcCloudEvents[E]): unknown;
  enterRoom(params: TrtcParams, scene: number): void;
  exitRoom(): void;
  setDefaultStreamRecvMode(autoRecvAudio: boolean, autoRecvVideo: boolean): void;
  /** With automatic receiving off: whether to receive (false) a user's audio. */
  muteRemoteAudio(userId: string, mute: boolean): void;
  /** With automatic receiving off: pull a user's video; `view` null renders nowhere (frames still reach the render callback). */
  startRemoteView(userId: string, view: null, streamType: number): void;
  stopRemoteView(userId: string, streamType: number): void;
  setAudioFrameCallback(callback: TrtcAudioFrameCallback | null): void;
  setRemoteVideoRenderCallback(
    userId: string,
    pixelFormat: number,
    bufferType: number,
    callback: TrtcVideoRenderCallback | null,
  ): void;
}

/** The `TRTCCloud` class: the package's default export. */
export interface TrtcCloudModule {
  getTRTCShareInstance(): TrtcCloud;
}

/** What `require('trtc-electron-sdk')` returns (liteav/index.js). */
export interface TrtcSdkModule {
  default: TrtcCloudModule;
  /** enterRoom() ignores its parameters (it only logs an error) unless they are `instanceof` this class. */
  TRTCParams: new (sdkAppId: number, userId: string, userSig: string, roomId: number, strRoomId: string, role: number) => TrtcParams;
}
