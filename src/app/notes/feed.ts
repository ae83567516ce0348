import type { Context } from 'hono';
import * as v from 'valibot';
import { databaseProblem } from '../../db/errors.js';
import { lastEventIdOf, streamEvents } from '../../runtime/sse.js';
import type { createNoteStore } from './store.js';

/**
 * The owner's change feed as server-sent events, `GET /v1/notes/events`.
 * Each change to one of the owner's notes is one event: `id:` its seq,
 * `event:` created, updated or deleted, `data:` `{"id", "version", "at"}`
 * (the note itself is a GET away: the feed carries no content). A client
 * that reconnects sends `Last-Event-ID` and gets every change after it, with
 * no gap and no duplicate, from any instance: the order is the database's
 * (migrations/0003_note_changes.sql). A new subscriber gets a `ready` event
 * whose id is where it starts.
 *
 * New changes are found by polling the owner's rows every POLL_MS (an index
 * lookup), and at once when this instance made the change: LISTEN/NOTIFY
 * would need a connection of its own and does not pass a pooler in
 * transaction mode (DB_POOLER=transaction).
 */

const POLL_MS = 1_000;
const PAGE = 100;
const Seq = v.pipe(v.string(), v.regex(/^\d{1,18}$/, 'expected a number of up to 18 digits'));

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

  const serve = (c: Context, owner: string) => {
    const after = lastEventIdOf(c, Seq);
    return streamEvents(c, async (stream, signal) => {
      let cursor = after;
      try {
        if (cursor === undefined) {
          cursor = await store.latestSeq(owner, signal);
          await stream.writeSSE({ event: 'ready', id: cursor, data: '{}' });
        }
        while (!signal.aborted) {
          const changes = await store.changesAfter(owner, cursor, PAGE, signal);
          for (const change of changes) {
            await stream.writeSSE({
              id: change.seq,
              event: change.kind,
              data: JSON.stringify({ id: change.noteId, version: change.version, at: change.at }),
            });
            cursor = change.seq;
          }
          if (changes.length < PAGE) await nextChange(owner, signal);
        }
      } catch (error) {
        const problem = databaseProblem(error);
        if (!problem) throw error;
        // The database is down or slow: the client retries later, on whichever instance is ready.
        await stream.writeSSE({ event: 'unavailable', retry: 5_000, data: JSON.stringify({ code: problem.code }) });
      }
    });
  };

  return { serve, changed: wake };
}
