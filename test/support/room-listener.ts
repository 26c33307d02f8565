import type { AudioFrame, RoomExitReason, RoomListener, VideoFrame } from '../../shared/sources/room-source';

/**
 * A RoomListener that keeps what it is told, in order (`events`, frames included), the frames by
 * kind, and `out`: the reason the room ended.
 */
export function recordingListener() {
  const events: Array<[string, ...unknown[]]> = [];
  const audio: AudioFrame[] = [];
  const video: VideoFrame[] = [];
  let exited: (reason: RoomExitReason) => void = () => {};
  const out = new Promise<RoomExitReason>((resolve) => (exited = resolve));
  const record =
    (name: string) =>
    (...args: unknown[]) =>
      events.push([name, ...args]);
  const listener: RoomListener = {
    anchorJoined: record('anchorJoined'),
    anchorLeft: record('anchorLeft'),
    audioAvailable: record('audioAvailable'),
    videoAvailable: record('videoAvailable'),
    audioFrame: (frame) => (audio.push(frame), events.push(['audioFrame', frame])),
    videoFrame: (frame) => (video.push(frame), events.push(['videoFrame', frame])),
    exited: (reason) => (events.push(['exited', reason]), exited(reason)),
    error: record('error'),
  };
  return { events, audio, video, listener, out };
}
