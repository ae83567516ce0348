import type { Context } from 'hono';
import type { WSContext } from 'hono/ws';
import { drainSignalOf, lastEventIdOf, loggerOf, streamEvents, upgradeWebSocket } from 'runway/hono';
import { databaseProblem } from 'runway/postgres';
import * as v from 'valibot';
import type { createNoteStore, NoteChange } from './store.js';

/**
 * The owner's change feed, one stream of changes over two transports (the
 * wire formats are in docs/change-feed.md):
 *   - `GET /v1/notes/events`, server-sent events: `id:` the change's seq,
 *     `event:` created, updated or deleted, `data:` `{"id", "version", "at"}`;
 *     a client that reconnects sends `Last-Event-ID`.
 *   - `GET /v1/notes/socket`, a WebSocket: the client's first message is
 *     `{"resume": "<seq>"}` (or `{"resume": null}`: from now), then each
 *     change is one JSON message `{"type", "seq", "id", "version", "at"}`.
 * Either way a client that resumes gets every change after its seq, with no
 * gap and no duplicate, from any instance: the order is the database's
 * (migrations/0003_note_changes.sql). A subscription starts with `ready`,
 * carrying the seq it starts after. The history is kept for FEED_RETENTION_MS (feed-sweep.ts): a
 * client that resumes from before it gets `truncated` instead, with the seq the feed goes on from,
 * and must reload the notes. The feed carries no content: the note is a GET away.
 *
 * New changes are found by polling the owner's rows every POLL_MS (an index
 * lookup), and at once when this instance made the change: LISTEN/NOTIFY
 * would need a connection of its own and does not pass a pooler in
 * transaction mode (DB_POOLER=transaction).
 */

const POLL_MS = 1_000;
const PAGE = 100;
// When the database fails the feed, how soon the client should come back.
const UNAVAILABLE_RETRY_MS = 5_000;
// A poll is an index lookup. A stream has no handler deadline, so without this bound a query on a
// black-holed connection would hold the subscriber forever, its heartbeats saying all is well.
const QUERY_BOUND_MS = 10_000;
const Seq = v.pipe(v.string(), v.regex(/^\d{1,18}$/, 'expected a number of up to 18 digits'));
const Resume = v.strictObject({ resume: v.nullable(Seq) });

type Store = ReturnType<typeof createNoteStore>;

export function createFeed(store: Store) {
  // Subscribers of this instance, by owner: woken when this instance writes for that owner.
  const waiting = new Map<string, Set<() => void>>();

  const wake = (owner: string) => {
    const wakers = waiting.get(owner);
    if (!wakers) return;
    waiting.delete(owner);
    for (const resolve of wakers) resolve();
  };

  const nextChange = (owner: string, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const wakers = waiting.get(owner) ?? new Set();
      waiting.set(owner, wakers);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        wakers.delete(done);
        if (wakers.size === 0 && waiting.get(owner) === wakers) waiting.delete(owner);
        resolve();
      };
      const timer = setTimeout(done, POLL_MS);
      signal.addEventListener('abort', done, { once: true });
      wakers.add(done);
    });

  /**
   * Every change of `owner` after `after` (undefined: from now), in order, until `signal` aborts:
   * `ready` first with the seq it starts after, or `truncated` when changes after `after` are gone
   * (the retention sweep took them, or `after` is past anything this database has: a restore)
   * and the feed goes on from now; `truncated` too, mid-feed, when the sweep takes changes this
   * subscriber has not reached yet. A database error is thrown to the transport.
   */
  const follow = async (
    owner: string,
    after: string | undefined,
    signal: AbortSignal,
    emit: {
      ready(seq: string): Promise<void> | void;
      truncated(seq: string): Promise<void> | void;
      change(change: NoteChange): Promise<void> | void;
    },
  ) => {
    const { latest, prunedThrough } = await bounded(signal, (query) => store.feedBounds(owner, query));
    let cursor = after ?? latest;
    if (after !== undefined && (BigInt(after) < BigInt(prunedThrough) || BigInt(after) > BigInt(latest))) {
      cursor = latest;
      await emit.truncated(cursor);
    } else {
      await emit.ready(cursor);
    }
    while (!signal.aborted) {
      const from = cursor;
      const { changes, prunedThrough: horizon } = await bounded(signal, (query) =>
        store.changesAfter(owner, from, PAGE, query),
      );
      if (BigInt(horizon) > BigInt(from)) {
        // A sweep (this instance's or another's) deleted changes after the cursor while this
        // subscriber was behind: the page would skip them in silence. Told, as a resume from below
        // the horizon is, and on from the newest change.
        const bounds = await bounded(signal, (query) => store.feedBounds(owner, query));
        cursor = bounds.latest;
        await emit.truncated(cursor);
        continue;
      }
      for (const change of changes) {
        if (signal.aborted) return;
        await emit.change(change);
        cursor = change.seq;
      }
      if (changes.length < PAGE) await nextChange(owner, signal);
    }
  };

  const serve = (c: Context, owner: string) => {
    const after = lastEventIdOf(c, Seq);
    return streamEvents(c, async (stream, signal) => {
      try {
        await follow(owner, after, signal, {
          // A client that resumes knows where it is: `ready` is for a new subscriber.
          ready: (seq) => (after === undefined ? stream.writeSSE({ event: 'ready', id: seq, data: '{}' }) : undefined),
          truncated: (seq) => stream.writeSSE({ event: 'truncated', id: seq, data: '{}' }),
          change: (change) =>
            stream.writeSSE({
              id: change.seq,
              event: change.kind,
              data: JSON.stringify({ id: change.noteId, version: change.version, at: change.at }),
            }),
        });
      } catch (error) {
        const problem = feedProblem(error);
        if (!problem) throw error;
        // The database is down or slow: the client retries later, on whichever instance is ready.
        await stream.writeSSE({
          event: 'unavailable',
          retry: UNAVAILABLE_RETRY_MS,
          data: JSON.stringify({ code: problem.code }),
        });
      }
    });
  };

  const socket = upgradeWebSocket((c) => {
    const owner = c.get('userId') as string;
    const log = loggerOf(c);
    const drain = drainSignalOf(c);
    const closed = new AbortController();
    const signal = AbortSignal.any([closed.signal, drain]);
    let subscribed = false;
    const send = (ws: WSContext, message: object) => ws.send(JSON.stringify(message));
    return {
      onMessage(event, ws) {
        if (subscribed) return refuse(ws, 'one subscribe message per socket; reconnect to resume elsewhere');
        const resume = parseResume(event.data);
        if (!resume.ok) return refuse(ws, resume.detail);
        subscribed = true;
        follow(owner, resume.after, signal, {
          ready: (seq) => send(ws, { type: 'ready', seq }),
          truncated: (seq) => send(ws, { type: 'truncated', seq }),
          change: (change) =>
            send(ws, { type: change.kind, seq: change.seq, id: change.noteId, version: change.version, at: change.at }),
        }).catch((error: unknown) => {
          // Ended by the client or the drain (its 1001 is the runtime's): nothing to tell.
          if (signal.aborted) return;
          const problem = feedProblem(error);
          if (!problem) {
            log.error('change feed failed', { error: (error as Error).message });
            return ws.close(1011, 'internal error');
          }
          send(ws, { type: 'unavailable', code: problem.code, retryMs: UNAVAILABLE_RETRY_MS });
          // 1013 Try Again Later: the database, not the client.
          ws.close(1013, 'feed unavailable');
        });
      },
      onClose() {
        closed.abort();
      },
    };
  });

  return { serve, socket, changed: wake };
}

/**
 * Runs `query` under `signal` and QUERY_BOUND_MS. Not AbortSignal.any with AbortSignal.timeout: on
 * Node 20 that combined signal is garbage-collected while it waits, and never aborts (seen: a
 * black-holed database held every subscriber until the test's bound).
 */
async function bounded<T>(signal: AbortSignal, query: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException('the feed query took too long', 'TimeoutError')),
    QUERY_BOUND_MS,
  );
  const forward = () => controller.abort(signal.reason);
  if (signal.aborted) forward();
  else signal.addEventListener('abort', forward, { once: true });
  try {
    return await query(controller.signal);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', forward);
  }
}

// What the client is told when the feed's query failed: the database's problem, or its own bound.
function feedProblem(error: unknown): { code: string } | undefined {
  if (error instanceof DOMException && error.name === 'TimeoutError') return { code: 'query_timeout' };
  return databaseProblem(error);
}

// A client's bad subscribe message: told why in a message, then closed 1008 (policy violation).
function refuse(ws: WSContext, detail: string) {
  ws.send(JSON.stringify({ type: 'error', code: 'invalid_subscribe', detail }));
  ws.close(1008, 'invalid subscribe message');
}

function parseResume(data: unknown): { ok: true; after: string | undefined } | { ok: false; detail: string } {
  if (typeof data !== 'string') return { ok: false, detail: 'expected a text message' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return { ok: false, detail: 'expected JSON: {"resume": "<seq>"} or {"resume": null}' };
  }
  const result = v.safeParse(Resume, parsed);
  if (!result.success) {
    return { ok: false, detail: `expected {"resume": "<seq>"} or {"resume": null}: ${result.issues[0].message}` };
  }
  return { ok: true, after: result.output.resume ?? undefined };
}
