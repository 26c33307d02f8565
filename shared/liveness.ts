/**
 * Whether media still arrives: before the first packet, a deadline for it; after it, a limit on
 * the silence between packets. A live connection whose publisher left stays open with nothing on
 * it (every server tested does this), so silence, not a closed socket, is how a reader learns the
 * stream is gone.
 */
export interface LivenessLimits {
  firstPacketTimeoutMs: number;
  stallTimeoutMs: number;
}

export type LivenessFailure = 'no-first-frame' | 'stalled';

const TICK_MS = 250;

export class LivenessWatch {
  private readonly startedAt = Date.now();
  private lastPacketAt: number | undefined;
  private readonly timer: NodeJS.Timeout;
  private fired = false;

  constructor(
    private readonly limits: LivenessLimits,
    private readonly onFailure: (failure: LivenessFailure) => void,
  ) {
    this.timer = setInterval(() => this.check(), TICK_MS);
  }

  /** A packet arrived. */
  alive(): void {
    this.lastPacketAt = Date.now();
  }

  get receivedAny(): boolean {
    return this.lastPacketAt !== undefined;
  }

  dispose(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    if (this.fired) return;
    const now = Date.now();
    if (this.lastPacketAt === undefined) {
      if (now - this.startedAt >= this.limits.firstPacketTimeoutMs) this.fire('no-first-frame');
    } else if (now - this.lastPacketAt >= this.limits.stallTimeoutMs) {
      this.fire('stalled');
    }
  }

  private fire(failure: LivenessFailure): void {
    this.fired = true;
    this.dispose();
    this.onFailure(failure);
  }
}
