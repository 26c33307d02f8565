import { FLV_TAG_AUDIO, FLV_TAG_VIDEO, flvTag, flvTagInFrame, isAvc, videoTagInfo } from '../media/flv';
import { LivenessWatch } from '../liveness';
import { RtmpPlayer } from './rtmp/client';
import type { SourceEnd, VideoSource, VideoSourceOptions } from './video-source';

/** RTMP(S) received by our own client (see rtmp/client.ts): no process, no remux. */
export class NodeRtmpSource implements VideoSource {
  readonly path = 'node-rtmp' as const;
  readonly ended: Promise<SourceEnd>;
  private readonly player: RtmpPlayer;
  private readonly liveness: LivenessWatch;
  private packets = 0;
  private refusal: SourceEnd | undefined;

  constructor(options: VideoSourceOptions) {
    let stalled: SourceEnd['reason'] | undefined;
    this.liveness = new LivenessWatch(options.liveness, (failure) => {
      stalled = failure;
      void this.player.stop();
    });
    this.player = new RtmpPlayer({
      url: options.url,
      setupDeadlineMs: Date.now() + options.liveness.firstPacketTimeoutMs,
      onVideo: (message) => {
        if (this.refusal) return;
        // In place when the message came with its FLV framing (an aggregate's parts do not).
        const tag = message.frame ? flvTagInFrame(FLV_TAG_VIDEO, message.timestamp, message.frame) : flvTag(FLV_TAG_VIDEO, message.timestamp, message.payload);
        const info = videoTagInfo(tag);
        if (!info) return;
        if (!isAvc(info)) {
          this.refusal = { reason: 'failed', code: 'not-h264', message: notH264(info.codecId), packets: this.packets, path: this.path };
          void this.player.stop();
          return;
        }
        this.packets++;
        this.liveness.alive();
        options.onVideoTag(tag, info);
      },
      onAudio: options.onAudioTag
        ? (message) => {
            if (this.refusal) return;
            options.onAudioTag!(message.frame ? flvTagInFrame(FLV_TAG_AUDIO, message.timestamp, message.frame) : flvTag(FLV_TAG_AUDIO, message.timestamp, message.payload));
          }
        : undefined,
    });
    this.ended = this.player.ended.then((end): SourceEnd => {
      this.liveness.dispose();
      const packets = this.packets;
      if (this.refusal) return this.refusal;
      if (stalled) return { reason: stalled, packets, path: this.path };
      switch (end.kind) {
        case 'stopped':
          return { reason: 'stopped', packets, path: this.path };
        case 'closed':
          return { reason: 'closed', message: end.detail, packets, path: this.path };
        case 'unsupported':
          return { reason: 'unsupported', message: end.message, packets, path: this.path };
        case 'failed':
          return { reason: 'failed', code: end.code, message: end.message, packets, path: this.path };
      }
    });
  }

  stop(): void {
    void this.player.stop();
  }
}

export function notH264(codecId: number): string {
  return `the source's video is not H.264 (FLV codec id ${codecId}); only H.264 sources are supported`;
}
