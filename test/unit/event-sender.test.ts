import { once } from 'node:events';
import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { EventSender } from '../../shared/job/events';
import { createLogger } from '../../shared/log';

const logger = createLogger({ requestId: 'events', level: 'error' });

async function receiver(status: () => number) {
  const received: Array<{ EventType: string; Sequence: number }> = [];
  const server = createServer((request, response) => {
    let raw = '';
    request.on('data', (chunk) => (raw += chunk));
    request.on('end', () => {
      const answer = status();
      if (answer === 200) received.push(JSON.parse(raw));
      response.statusCode = answer;
      response.end();
    });
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/e`, received, close: () => server.close() };
}

describe('EventSender', () => {
  it('never blocks emit, keeps at most maxQueued waiting (dropping the oldest), and counts what never got through', async () => {
    const sink = await receiver(() => 503);
    try {
      const sender = new EventSender({ url: sink.url, requestId: 'r', logger, maxQueued: 3, backoff: { baseMs: 20, maxMs: 50 }, closeWaitMs: 500 });
      const started = performance.now();
      for (let i = 0; i < 10; i++) sender.emit('Tick', { i });
      expect(performance.now() - started).toBeLessThan(50);
      const report = await sender.close('Stopped', {});
      expect(report).toEqual({ Sent: 0, Undelivered: 11 });
    } finally {
      sink.close();
    }
  });

  it('delivers in order once the receiver is back, the final event last', async () => {
    let up = false;
    const sink = await receiver(() => (up ? 200 : 500));
    try {
      const sender = new EventSender({ url: sink.url, requestId: 'r', logger, backoff: { baseMs: 20, maxMs: 50 }, closeWaitMs: 5_000 });
      for (let i = 0; i < 5; i++) sender.emit('Tick', { i });
      setTimeout(() => (up = true), 300);
      const report = await sender.close('Stopped', {});
      expect(report).toEqual({ Sent: 6, Undelivered: 0 });
      expect(sink.received.map((event) => event.Sequence)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(sink.received.at(-1)!.EventType).toBe('Stopped');
    } finally {
      sink.close();
    }
  });
});
