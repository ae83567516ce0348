import { request } from 'node:http';
import { WebSocket } from 'ws';

/**
 * Change-feed clients over a real connection, as well-written ones are: each
 * reconnects after every end (a drain's `retry:` or 1001, a cut, a refusal,
 * an `unavailable` notice) and resumes from the last seq it saw, until
 * `stop` aborts. For the rollout proof and the chaos campaign.
 */

export interface Subscriber {
  /** The seqs of the `created` changes received, in order. */
  created: string[];
  reconnects: number;
  /** Settles when the first subscription is confirmed (`ready` or `truncated`): changes after it will arrive. */
  subscribed: Promise<void>;
  /** The `unavailable` notices received (the database failed the feed), and each close code of a socket. */
  notices: string[];
  done: Promise<void>;
}

// A client's retry delay, shorter than the 1 s (5 s when unavailable) the server suggests, so tests run quicker.
const RETRY_MS = 100;

function newSubscriber(): { sub: Subscriber; confirm: () => void } {
  let confirm = () => {};
  const subscribed = new Promise<void>((resolve) => {
    confirm = resolve;
  });
  return { sub: { created: [], reconnects: -1, subscribed, notices: [], done: Promise.resolve() }, confirm };
}

function reconnecting(sub: Subscriber, once: () => Promise<void>, stop: AbortSignal) {
  return (async () => {
    while (!stop.aborted) {
      sub.reconnects++;
      await once();
      if (!stop.aborted) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  })();
}

/** GET /v1/notes/events as a browser's EventSource: Last-Event-ID on each reconnect (`from` at first, if given). */
export function subscribeEvents(port: number, token: string, stop: AbortSignal, from?: string): Subscriber {
  const { sub, confirm } = newSubscriber();
  let last = from;
  const once = () =>
    new Promise<void>((resolve) => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (last) headers['last-event-id'] = last;
      const req = request({ host: '127.0.0.1', port, path: '/v1/notes/events', agent: false, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          let end = text.indexOf('\n\n');
          while (end !== -1) {
            const block = text.slice(0, end);
            text = text.slice(end + 2);
            end = text.indexOf('\n\n');
            if (/^event: unavailable$/m.test(block)) sub.notices.push('unavailable');
            // A resume sends no `ready` (the client knows where it is): its first event confirms it.
            if (/^id: /m.test(block)) confirm();
            const id = /^id: (\d+)$/m.exec(block)?.[1];
            if (!id) continue;
            last = id;
            if (/^event: created$/m.test(block)) sub.created.push(id);
          }
        });
        res.on('close', () => resolve());
      });
      const abort = () => req.destroy();
      stop.addEventListener('abort', abort, { once: true });
      req.on('close', () => stop.removeEventListener('abort', abort));
      req.on('error', () => resolve());
      req.end();
    });
  sub.done = reconnecting(sub, once, stop);
  return sub;
}

/** GET /v1/notes/socket: subscribes with `{"resume": <the last seq seen>}` (`from` at first). */
export function subscribeSocket(port: number, token: string, from: string, stop: AbortSignal): Subscriber {
  const { sub, confirm } = newSubscriber();
  let last = from;
  const once = () =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/notes/socket`, {
        headers: { authorization: `Bearer ${token}` },
        perMessageDeflate: false,
      });
      ws.on('open', () => ws.send(JSON.stringify({ resume: last })));
      ws.on('message', (data) => {
        const message = JSON.parse(String(data)) as { type: string; seq?: string };
        if (message.type === 'unavailable') sub.notices.push('unavailable');
        if (message.type === 'ready' || message.type === 'truncated') confirm();
        if (message.type === 'created' || message.type === 'updated' || message.type === 'deleted') {
          last = message.seq as string;
          if (message.type === 'created') sub.created.push(last);
        }
      });
      const abort = () => ws.terminate();
      stop.addEventListener('abort', abort, { once: true });
      ws.on('close', (code) => {
        sub.notices.push(`close ${code}`);
        stop.removeEventListener('abort', abort);
        resolve();
      });
      // A refused upgrade (a 503 from an instance that is draining) or a reset: 'close' follows.
      ws.on('error', () => {});
    });
  sub.done = reconnecting(sub, once, stop);
  return sub;
}

/**
 * How `sub` fared when a write's outcome was unknown to its client (a 503 handler_timeout while the
 * database was black-holed may still commit, later): what it got must be the database's own created
 * seqs from the start, `settled` (read once the subscribers stopped), without a gap, a repeat or a
 * reorder, and reach at least every seq known when the writes ended (`known`: every 201 among them).
 */
export function deliveryOfSettled(sub: Subscriber, known: string[], settled: string[]): string {
  const prefix = sub.created.join(',') === settled.slice(0, sub.created.length).join(',');
  if (prefix && sub.created.length >= known.length) return 'every created note, once, in order';
  return `${deliveryOf(sub, known)}; of the ${settled.length} settled: a prefix ${prefix}`;
}

/** How `sub` fared against the `expected` created seqs, in one phrase the tests compare. */
export function deliveryOf(sub: Subscriber, expected: string[]): string {
  if (sub.created.join(',') === expected.join(',')) return 'every created note, once, in order';
  const ordered = sub.created.every((id, i) => i === 0 || Number(id) > Number(sub.created[i - 1]));
  // Which seqs are missing and which are extra says whether it was the start, a gap or the tail.
  const got = new Set(sub.created);
  const want = new Set(expected);
  const missing = expected.filter((seq) => !got.has(seq));
  const extra = sub.created.filter((seq) => !want.has(seq));
  const where = (seqs: string[]) =>
    seqs.length
      ? `${seqs.slice(0, 5).join(',')}${seqs.length > 5 ? ',…' : ''} (of ${expected[0]}-${expected.at(-1)})`
      : 'none';
  return `${sub.created.length} of ${expected.length}, ${got.size} distinct, in order: ${ordered}; missing ${where(missing)}, extra ${where(extra)}`;
}
