/**
 * The job's clock for a live stream: each packet's decode time mapped to epoch ms, continuous and
 * increasing across reconnects and across a publisher that restarts its timestamps (a reconnect
 * or republish behind the same server connection restarts them at 0). A connection starts on the
 * wall clock; within it the source's own clock rules, so snapshot times follow the pictures, not
 * the network's jitter. A jump back, or forward by far more than the time that passed, starts
 * over from the wall clock.
 */

/** Backwards by less than this is jitter (clamped), not a restart. */
const BACKWARD_TOLERANCE_MS = 100;
/** Forward by this much more than the wall clock moved is a new clock, not a gap. */
const FORWARD_JUMP_MS = 5_000;

export class StreamTimeline {
  private offset: number | undefined;
  private lastDts = 0;
  private lastTime = Number.NEGATIVE_INFINITY;
  private lastWall = 0;
  /** Times the source's clock was found to restart (or jump) within a connection. */
  restarts = 0;

  /** A new connection: its clock is unrelated to the last one's. */
  newConnection(): void {
    this.offset = undefined;
  }

  /** Timeline ms of another track's time on this connection's clock (audio); undefined before the first video. */
  timeOf(dts: number): number | undefined {
    return this.offset === undefined ? undefined : dts + this.offset;
  }

  /** The decode time of a packet, in timeline ms. `nowMs` is when it arrived. */
  mapDts(dts: number, nowMs: number): number {
    if (this.offset === undefined) {
      this.offset = Math.max(nowMs, this.lastTime + 1) - dts;
    } else if (dts < this.lastDts - BACKWARD_TOLERANCE_MS || dts - this.lastDts > nowMs - this.lastWall + FORWARD_JUMP_MS) {
      this.restarts++;
      this.offset = this.lastTime + Math.max(1, nowMs - this.lastWall) - dts;
    }
    const time = Math.max(dts + this.offset, this.lastTime);
    this.lastDts = dts;
    this.lastTime = time;
    this.lastWall = nowMs;
    return time;
  }
}
