import { expect, onTestFinished } from 'vitest';
import type { NotesHarness } from './notes-harness.js';

/** A subscriber of GET /v1/notes/events in memory, and a note writer: for the feed's tests. */

export interface FeedEvent {
  id?: string;
  event?: string;
  data?: string;
  retry?: string;
}

/** A subscription: the events received so far, and a way to wait for more. */
export async function subscribe(
  harness: NotesHarness,
  user: string,
  headers: Record<string, string> = {},
  { pauseAt }: { pauseAt?: number } = {},
) {
  const controller = new AbortController();
  // A slow reader: once `pauseAt` events are in, nothing more is read (the server's writes wait) until resume().
  let resume = () => {};
  const resumed = pauseAt === undefined ? Promise.resolve() : new Promise<void>((done) => (resume = done));
  onTestFinished(() => controller.abort());
  const res = await harness.app.request('/v1/notes/events', {
    headers: { authorization: `Bearer ${await harness.token({ sub: user })}`, ...headers },
    signal: controller.signal,
  });
  const events: FeedEvent[] = [];
  const waiters = new Set<() => void>();
  if (res.body) {
    void (async () => {
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      try {
        for (;;) {
          if (pauseAt !== undefined && events.length >= pauseAt) await resumed;
          const { done, value } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
          let end = text.indexOf('\n\n');
          while (end !== -1) {
            const block = text.slice(0, end);
            text = text.slice(end + 2);
            end = text.indexOf('\n\n');
            if (block.startsWith(':')) continue;
            const event: FeedEvent = {};
            for (const line of block.split('\n')) {
              const at = line.indexOf(': ');
              event[line.slice(0, at) as keyof FeedEvent] = line.slice(at + 2);
            }
            events.push(event);
            for (const wake of waiters) wake();
          }
        }
      } catch {
        // Aborted by the test.
      }
    })();
  }
  const until = (count: number, boundMs = 10_000) =>
    new Promise<FeedEvent[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${events.length} events, not ${count}: ${JSON.stringify(events)}`)),
        boundMs,
      );
      const check = () => {
        if (events.length < count) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(events.slice(0, count));
      };
      waiters.add(check);
      check();
    });
  return { res, events, until, resume: () => resume() };
}

export async function createNote(
  harness: NotesHarness,
  user: string,
  title: string,
  app: Pick<NotesHarness['app'], 'request'> = harness.app,
) {
  const res = await app.request('/v1/notes', {
    method: 'POST',
    headers: { authorization: `Bearer ${await harness.token({ sub: user })}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title, body: '' }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}
