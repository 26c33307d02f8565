import { randomUUID } from 'node:crypto';
import { deliverCallback } from '../callback';
import type { Logger } from '../log';
import { sleep } from '../retry';

/**
 * Lifecycle events to the caller's EventCallback while a job runs: each a signed JSON POST
 * (like the final callback) carrying `EventType`, a unique `EventId`, a `Sequence` increasing
 * per job, the `RequestId` and a `Time`. Sending never blocks the job: events wait in a bounded
 * queue and go out one at a time, in order, each retried with backoff until delivered (at least
 * once: a receiver may see one twice, with the same EventId) or until the queue must make room,
 * which drops the oldest (counted as undelivered). The final event always goes last.
 */

export interface LifecycleEvent {
  EventType: string;
  EventId: string;
  Sequence: number;
  RequestId: string;
  /** When it happened (ISO 8601). */
  Time: string;
  [field: string]: unknown;
}

export interface EventDeliveryReport {
  Sent: number;
  Undelivered: number;
}

export interface EventSenderOptions {
  url: string;
  requestId: string;
  secret?: string;
  logger: Logger;
  /** Epoch ms by which every delivery must be over (the deadline, less the callback's reserve). */
  deadlineAt?: number;
  /** Events waiting at most; beyond it the oldest is dropped. */
  maxQueued?: number;
  /** Between rounds of attempts while the receiver is down. */
  backoff?: { baseMs: number; maxMs: number };
  /** After close(), how long undelivered events are still tried (the deadline may end it sooner). */
  closeWaitMs?: number;
}

const DEFAULT_MAX_QUEUED = 64;
const DEFAULT_BACKOFF = { baseMs: 1_000, maxMs: 15_000 };
const DEFAULT_CLOSE_WAIT_MS = 30_000;
/** Attempts per round (deliverCallback's own quick retries). */
const ATTEMPTS_PER_ROUND = 2;

export class EventSender {
  private readonly queue: LifecycleEvent[] = [];
  private sequence = 0;
  private sent = 0;
  private dropped = 0;
  private pumping: Promise<void> | undefined;
  /** Set by close(): no more events, and tries end by then. */
  private closeBy: number | undefined;

  constructor(private readonly options: EventSenderOptions) {}

  /** Queues an event; returns at once. */
  emit(type: string, fields: Record<string, unknown> = {}): void {
    if (this.closeBy === undefined) this.enqueue(type, fields);
  }

  /**
   * Sends `type` last, after what is queued: waits for the queue (bounded by the deadline), and
   * reports what was sent and what was not.
   */
  async close(type: string, fields: Record<string, unknown>): Promise<EventDeliveryReport> {
    this.enqueue(type, fields);
    this.closeBy = Date.now() + (this.options.closeWaitMs ?? DEFAULT_CLOSE_WAIT_MS);
    await this.pump();
    const undelivered = this.dropped + this.queue.length;
    if (undelivered > 0) this.options.logger.warn('lifecycle events not delivered', { url: this.options.url, undelivered });
    return { Sent: this.sent, Undelivered: undelivered };
  }

  private enqueue(type: string, fields: Record<string, unknown>): void {
    const event: LifecycleEvent = { ...fields, EventType: type, EventId: randomUUID(), Sequence: ++this.sequence, RequestId: this.options.requestId, Time: new Date().toISOString() };
    this.queue.push(event);
    const limit = this.options.maxQueued ?? DEFAULT_MAX_QUEUED;
    if (this.queue.length > limit) {
      // The oldest waiting one goes (not one being sent: that one is the queue's head and stays).
      this.queue.splice(1, 1);
      this.dropped++;
    }
    void this.pump();
  }

  private pump(): Promise<void> {
    this.pumping ??= this.deliverAll().finally(() => (this.pumping = undefined));
    return this.pumping;
  }

  private async deliverAll(): Promise<void> {
    const backoff = this.options.backoff ?? DEFAULT_BACKOFF;
    let round = 0;
    while (this.queue.length > 0) {
      if (this.timeLeft() <= 0) return;
      const event = this.queue[0]!;
      const outcome = await deliverCallback(this.options.url, event, {
        secret: this.options.secret,
        attempts: ATTEMPTS_PER_ROUND,
        baseDelayMs: 200,
        deadlineAt: Date.now() + this.timeLeft(),
      });
      if (outcome.delivered) {
        this.queue.shift();
        this.sent++;
        round = 0;
        continue;
      }
      if (round++ === 0) this.options.logger.warn('lifecycle event not delivered yet; retrying', { event: event.EventType, sequence: event.Sequence, status: outcome.status, error: outcome.error });
      await sleep(Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(round, 6), Math.max(0, this.timeLeft())));
    }
  }

  private timeLeft(): number {
    return Math.min(this.options.deadlineAt ?? Infinity, this.closeBy ?? Infinity) - Date.now();
  }
}
