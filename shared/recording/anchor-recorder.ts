import { describeExit, FfmpegProcess } from '../ffmpeg/supervisor';
import type { Logger } from '../log';
import { modeTracks, recordingArgs, recordingPipes, type RawAudioFormat, type RawVideoFormat, type RecordingPipes, type RecordMode } from './args';
import { blackI420, convertPcm, scaleI420 } from '../media/raw-media';
import type { AudioFrame, VideoFrame } from '../sources/room-source';

export interface AnchorRecorderOptions {
  userId: string;
  mode: RecordMode;
  ffmpegPath: string;
  outputPath: string;
  logger: Logger;
  videoFps?: number;
  /** Used when no video frame arrives within `videoWaitMs` (the camera is off). */
  fallbackVideoSize?: { width: number; height: number };
  videoWaitMs?: number;
  /** Monotonic ms; injectable for tests. */
  now?: () => number;
}

export interface AnchorRecording {
  userId: string;
  path: string;
  /** Seconds of media written (the room time covered). */
  durationSec: number;
  /** Set when the recording itself failed; the file may still hold what was written. */
  error?: string;
}

const DEFAULT_AUDIO: RawAudioFormat = { sampleRate: 48_000, channels: 1 };
/** A late video frame is repeated this long, then the picture goes black. */
const FREEZE_LIMIT_MS = 1_000;
/** Audio further behind room time than this is a gap: fill it with silence. */
const AUDIO_GAP_MS = 120;
/** Audio further ahead than this (a burst after a stall) is dropped to keep sync. */
const AUDIO_AHEAD_MS = 500;
const AUDIO_TICK_MS = 20;
/** 10 s of TRTC's 20 ms audio frames. */
const PENDING_AUDIO_FRAMES_LIMIT = 500;

/**
 * Records one anchor to FLV in room time. Frames arrive whenever the room delivers them;
 * a clock turns them into constant-rate streams: each video tick takes the newest
 * picture (frozen briefly, then black when none comes), and audio gaps become silence.
 * So an anchor who drops out, mutes or leaves and returns keeps one file whose timeline
 * matches the room, and audio and video stay in sync.
 */
export class AnchorRecorder {
  private readonly tracks: { audio: boolean; video: boolean };
  private readonly pipes: RecordingPipes;
  private readonly fps: number;
  private readonly now: () => number;
  private ffmpeg: FfmpegProcess | undefined;
  private videoFormat: RawVideoFormat | undefined;
  private audioFormat: RawAudioFormat | undefined;
  private startedAt: number | undefined;
  private latestPicture: { frame: VideoFrame; at: number } | undefined;
  private blackPicture: Buffer | undefined;
  private videoFramesWritten = 0;
  private audioSamplesWritten = 0;
  private pendingAudio: AudioFrame[] = [];
  private clock: NodeJS.Timeout | undefined;
  private startTimer: NodeJS.Timeout | undefined;
  private failure: string | undefined;
  private stopping: Promise<AnchorRecording> | undefined;
  /** The anchor left the room: nothing is written until it is back. */
  private away = false;

  constructor(private readonly options: AnchorRecorderOptions) {
    this.tracks = modeTracks(options.mode);
    this.pipes = recordingPipes(this.tracks);
    this.fps = options.videoFps ?? 15;
    this.now = options.now ?? (() => performance.now());
  }

  videoFrame(frame: VideoFrame): void {
    if (!this.tracks.video || this.stopping) return;
    this.away = false;
    this.markStart();
    this.latestPicture = { frame, at: this.now() };
    if (!this.ffmpeg) this.start({ width: frame.width, height: frame.height });
  }

  audioFrame(frame: AudioFrame): void {
    if (!this.tracks.audio || this.stopping) return;
    this.away = false;
    this.markStart();
    if (!this.ffmpeg) {
      this.pendingAudio.push(frame);
      // Bounded: only the wait for a first picture is ever buffered.
      if (this.pendingAudio.length > PENDING_AUDIO_FRAMES_LIMIT) this.pendingAudio.shift();
      if (!this.tracks.video) this.start(undefined);
      return;
    }
    this.writeAudio(frame);
  }

  /**
   * The anchor left the room. The file stops growing; if the anchor comes back, the time
   * away is filled with black and silence (written in one burst), so the file's timeline
   * still matches the room. If it never comes back, the file ends where it left.
   */
  anchorLeft(): void {
    if (this.ffmpeg && !this.away) this.tick();
    this.away = true;
  }

  /** Ends the recording: pads to the current room time, closes the pipes, waits for ffmpeg. */
  stop(): Promise<AnchorRecording> {
    this.stopping ??= this.finish();
    return this.stopping;
  }

  private markStart(): void {
    if (this.startedAt !== undefined) return;
    this.startedAt = this.now();
    // With video, wait a moment for the first picture to learn its size.
    if (this.tracks.video) {
      this.startTimer = setTimeout(() => this.ffmpeg || this.start(undefined), this.options.videoWaitMs ?? 3_000);
    }
  }

  private start(firstPictureSize: { width: number; height: number } | undefined): void {
    clearTimeout(this.startTimer);
    const size = firstPictureSize ?? this.options.fallbackVideoSize ?? { width: 640, height: 360 };
    this.videoFormat = this.tracks.video ? { ...size, fps: this.fps } : undefined;
    const firstAudio = this.pendingAudio[0];
    this.audioFormat = this.tracks.audio ? (firstAudio ? { sampleRate: firstAudio.sampleRate, channels: firstAudio.channels } : DEFAULT_AUDIO) : undefined;
    this.ffmpeg = new FfmpegProcess({
      binary: this.options.ffmpegPath,
      args: recordingArgs({ video: this.videoFormat, audio: this.audioFormat, outputPath: this.options.outputPath }),
      // Fed by us, not a network: no liveness watchdog.
      extraPipes: Object.keys(this.pipes).length,
    });
    void this.ffmpeg.exited.then((exit) => {
      if (!this.stopping) this.failure ??= describeExit(exit);
    });
    for (const frame of this.pendingAudio.splice(0)) this.writeAudio(frame);
    this.clock = setInterval(() => this.tick(), this.tracks.video ? 1000 / this.fps : AUDIO_TICK_MS);
    this.tick();
  }

  private elapsedMs(): number {
    return this.now() - this.startedAt!;
  }

  private tick(): void {
    if (this.away) return;
    const elapsed = this.elapsedMs();
    if (this.videoFormat) {
      const due = Math.floor((elapsed * this.fps) / 1000) + 1;
      while (this.videoFramesWritten < due) {
        this.write(this.pipes.video!, this.currentPicture());
        this.videoFramesWritten++;
      }
    }
    if (this.audioFormat) {
      const lagSamples = this.samplesFor(elapsed - AUDIO_GAP_MS) - this.audioSamplesWritten;
      if (lagSamples > 0) this.writeSilence(lagSamples + this.samplesFor(AUDIO_GAP_MS - AUDIO_TICK_MS));
    }
  }

  private currentPicture(): Buffer {
    const { width, height } = this.videoFormat!;
    const latest = this.latestPicture;
    if (!latest || this.now() - latest.at > FREEZE_LIMIT_MS) return (this.blackPicture ??= blackI420(width, height));
    const { frame } = latest;
    return frame.width === width && frame.height === height ? frame.data : scaleI420(frame.data, frame.width, frame.height, width, height);
  }

  private writeAudio(frame: AudioFrame): void {
    const format = this.audioFormat!;
    const pcm = convertPcm(frame.data, frame, format);
    const samples = pcm.length / 2 / format.channels;
    if (this.audioSamplesWritten > this.samplesFor(this.elapsedMs() + AUDIO_AHEAD_MS)) return;
    this.write(this.pipes.audio!, pcm);
    this.audioSamplesWritten += samples;
  }

  private writeSilence(samples: number): void {
    const format = this.audioFormat!;
    this.write(this.pipes.audio!, Buffer.alloc(samples * format.channels * 2));
    this.audioSamplesWritten += samples;
  }

  private samplesFor(ms: number): number {
    return Math.max(0, Math.floor((ms * this.audioFormat!.sampleRate) / 1000));
  }

  private write(fd: number, data: Buffer): void {
    this.ffmpeg!.pipe(fd).write(data);
  }

  private async finish(): Promise<AnchorRecording> {
    clearTimeout(this.startTimer);
    if (!this.ffmpeg && this.startedAt !== undefined && !this.away) this.start(undefined);
    const result = { userId: this.options.userId, path: this.options.outputPath };
    if (!this.ffmpeg) return { ...result, durationSec: 0, error: 'no media was received' };
    clearInterval(this.clock);
    this.tick();
    const ffmpeg = this.ffmpeg;
    for (const fd of [this.pipes.video, this.pipes.audio]) if (fd !== undefined) ffmpeg.pipe(fd).end();
    // Closed inputs let ffmpeg finish the file on its own; the stop is only a backstop.
    const backstop = setTimeout(() => void ffmpeg.stop('requested'), 30_000);
    const exit = await ffmpeg.exited;
    clearTimeout(backstop);
    if (exit.code !== 0) this.failure ??= describeExit(exit);
    const durationSec = this.videoFormat ? this.videoFramesWritten / this.fps : this.audioSamplesWritten / this.audioFormat!.sampleRate;
    this.options.logger.info('anchor recording closed', { anchor: this.options.userId, durationSec, code: exit.code });
    return { ...result, durationSec, ...(this.failure ? { error: this.failure } : {}) };
  }
}
