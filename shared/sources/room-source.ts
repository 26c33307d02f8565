import type { Logger } from '../log';

/**
 * What the recorder needs from a TRTC room, whoever provides it: Tencent's SDKs in production
 * (liteav in a room process on Linux, trtc-electron-sdk in an Electron host), or the room simulator
 * in tests and local runs. Times are milliseconds on one room clock shared by audio and video.
 */

export interface RoomTarget {
  sdkAppId: number;
  /** The recorder's own user, entering as an audience member. */
  userId: string;
  userSig: string;
  /** Exactly one of roomId / strRoomId; roomId wins when a caller has both. */
  roomId?: number;
  strRoomId?: string;
}

/** 16-bit little-endian interleaved PCM. */
export interface AudioFrame {
  userId: string;
  data: Buffer;
  sampleRate: number;
  channels: number;
  timestampMs: number;
}

/** One I420 picture: Y plane, then U, then V. */
export interface VideoFrame {
  userId: string;
  data: Buffer;
  width: number;
  height: number;
  timestampMs: number;
  /** Pictures of this user the source dropped since the previous one, because we read too slowly. */
  droppedBefore?: number;
}

/** Why the recorder is out of the room; `error`: the room source itself failed (e.g. its process died). */
export type RoomExitReason = 'dismissed' | 'kicked' | 'left' | 'error';

export interface RoomListener {
  /** An anchor is in the room (audience users never show up here). */
  anchorJoined(userId: string): void;
  anchorLeft(userId: string): void;
  audioAvailable(userId: string, available: boolean): void;
  videoAvailable(userId: string, available: boolean): void;
  audioFrame(frame: AudioFrame): void;
  videoFrame(frame: VideoFrame): void;
  /** The recorder is out of the room; no more frames follow. */
  exited(reason: RoomExitReason): void;
  error(code: number, message: string): void;
}

/**
 * Whose media to receive: anchors in `allow` only, or every anchor but those in `deny`
 * (TRTC's SubscribeStreamUserIds). Anchors not received cost nothing: no stream is pulled, no
 * frame callback registered, and their frames never reach the listener. Presence events
 * (anchorJoined/anchorLeft) still arrive for every anchor.
 */
export interface Subscription {
  allow?: readonly string[];
  deny?: readonly string[];
}

export function isSubscribed(subscription: Subscription | undefined, userId: string): boolean {
  if (subscription?.allow) return subscription.allow.includes(userId);
  return !subscription?.deny?.includes(userId);
}

/** What a room source may use of the invocation that opens it. */
export interface RoomContext {
  /** The invocation's private work dir (removed at its end). */
  workDir: string;
  /** Environment additions for any process the room starts: the work dir's tag (see work-dirs.ts). */
  env: Record<string, string>;
  logger: Logger;
}

export interface RoomSource {
  /** Resolves once in the room; rejects with a MediaError when entering fails. */
  enter(target: RoomTarget, listener: RoomListener, subscription?: Subscription): Promise<void>;
  /** Leaves (our own decision: deadline, SIGTERM, disk); `exited('left')` follows. */
  leave(): Promise<void>;
}
