import { Hono } from 'hono';
import { HttpProblem, readJson, signalOf, validate } from 'runway/hono';
import type { Db } from 'runway/postgres';
import * as v from 'valibot';
import type { Env } from '../env.js';
import { noneMatch, strongTags } from './conditional.js';
import { createFeed } from './feed.js';
import { fingerprint, once } from './idempotency.js';
import { IdempotencyKey, ListQuery, NoteId, NoteInput, NotePatch } from './schema.js';
import { createNoteStore, type Note, type StoredNote } from './store.js';

/**
 * The notes API: every production habit on a small resource. The caller's
 * `sub` owns the notes; another owner's note is 404, never 403, so ids do
 * not leak existence.
 */

const notFound = () => new HttpProblem(404, { code: 'note_not_found', detail: 'no such note' });
const preconditionFailed = () =>
  new HttpProblem(412, { code: 'precondition_failed', detail: 'the note changed since the version in If-Match' });

const etagOf = (version: string) => `"v${version}"`;

/**
 * The versions If-Match names: `undefined` for no header or `*` (any current
 * version will do: a missing note is 404 either way, RFC 9110 §13.2.1), else
 * the versions of the strong tags we issued. A tag we never issued cannot
 * match anything, so a header naming none of ours yields `[]`.
 */
function expectedVersions(header: string | undefined): string[] | undefined {
  if (header === undefined) return undefined;
  const tags = strongTags(header);
  if (tags === '*') return undefined;
  const versions: string[] = [];
  for (const tag of tags) {
    const match = /^"v(\d{1,20})"$/.exec(tag);
    if (match) versions.push(match[1] as string);
  }
  return versions;
}

function parseId(id: string): string {
  // Ids are opaque: a malformed one names no note.
  if (!v.is(NoteId, id)) throw notFound();
  return id;
}

function encodeCursor(stored: StoredNote): string {
  return toBase64Url(JSON.stringify([stored.createdUs, stored.note.id]));
}

// A cursor's creation time in microseconds since the epoch, as the store
// writes it. Past 9999-12-31 it was never written by us, and beyond Postgres'
// timestamp range `to_timestamp` fails (22008) instead of matching nothing.
const MAX_CREATED_US = 253_402_300_799_999_999n;

function decodeCursor(cursor: string): { createdUs: string; id: string } {
  try {
    const [createdUs, id] = JSON.parse(fromBase64Url(cursor)) as unknown[];
    if (
      typeof createdUs === 'string' &&
      /^\d{1,18}$/.test(createdUs) &&
      BigInt(createdUs) <= MAX_CREATED_US &&
      typeof id === 'string' &&
      v.is(NoteId, id)
    ) {
      return { createdUs, id };
    }
  } catch {}
  throw new HttpProblem(400, { code: 'invalid_cursor', detail: 'cursor is not valid; start from the first page' });
}

export function notesRoutes(db: Db, { idempotencyRetentionMs }: { idempotencyRetentionMs: number }) {
  const store = createNoteStore(db.sql);
  const feed = createFeed(store);
  const app = new Hono<Env>();

  // Registered before /:id, which would take `events` and `socket` for an id.
  app.get('/events', (c) => feed.serve(c, c.get('userId')));
  app.get('/socket', feed.socket);

  app.post('/', async (c) => {
    const input = await readJson(c, NoteInput);
    const owner = c.get('userId');
    const signal = signalOf(c);
    const keyHeader = c.req.header('idempotency-key');
    if (keyHeader === undefined) {
      const stored = await store.insert(owner, input, signal);
      feed.changed(owner);
      return created(c, stored.note, stored.version, false);
    }
    const key = validate(IdempotencyKey, keyHeader);
    const outcome = await once<{ note: Note; version: string }>(
      db.sql,
      { owner, key, requestHash: await fingerprint(input), retentionMs: idempotencyRetentionMs },
      async (tx) => {
        const stored = await store.insert(owner, input, signal, tx);
        return { status: 201, body: { note: stored.note, version: stored.version } };
      },
      signal,
    );
    if (outcome.kind === 'conflict') {
      throw new HttpProblem(422, {
        code: 'idempotency_key_reused',
        detail: 'this Idempotency-Key was used with a different request body',
      });
    }
    const { note, version } = outcome.response.body;
    if (outcome.kind !== 'replayed') feed.changed(owner);
    return created(c, note, version, outcome.kind === 'replayed');
  });

  app.get('/', async (c) => {
    const query = validate(ListQuery, c.req.query());
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const page = await store.list(c.get('userId'), query.limit, after, signalOf(c));
    const last = page.items.at(-1);
    return c.json({ items: page.items.map((s) => s.note), nextCursor: page.more && last ? encodeCursor(last) : null });
  });

  app.get('/:id', async (c) => {
    const stored = await store.get(c.get('userId'), parseId(c.req.param('id')), signalOf(c));
    if (!stored) throw notFound();
    const etag = etagOf(stored.version);
    c.header('etag', etag);
    if (!noneMatch(c.req.header('if-none-match'), etag)) return c.body(null, 304);
    return c.json(stored.note);
  });

  app.patch('/:id', async (c) => {
    const id = parseId(c.req.param('id'));
    const patch = await readJson(c, NotePatch);
    const result = await store.update(
      c.get('userId'),
      id,
      patch,
      expectedVersions(c.req.header('if-match')),
      signalOf(c),
    );
    if (result === false) throw preconditionFailed();
    if (!result) throw notFound();
    feed.changed(c.get('userId'));
    c.header('etag', etagOf(result.version));
    return c.json(result.note);
  });

  app.delete('/:id', async (c) => {
    const id = parseId(c.req.param('id'));
    const result = await store.remove(c.get('userId'), id, expectedVersions(c.req.header('if-match')), signalOf(c));
    if (result === false) throw preconditionFailed();
    if (!result) throw notFound();
    feed.changed(c.get('userId'));
    return c.body(null, 204);
  });

  return app;
}

function created(
  c: { header(name: string, value: string): void; json(body: unknown, status: 201): Response },
  note: Note,
  version: string,
  replayed: boolean,
) {
  c.header('location', `/v1/notes/${note.id}`);
  c.header('etag', etagOf(version));
  if (replayed) c.header('idempotent-replayed', 'true');
  return c.json(note, 201);
}

// Web-standard base64url (no Buffer): the app runs on Node, Bun and Deno alike.
function toBase64Url(text: string): string {
  const binary = String.fromCharCode(...new TextEncoder().encode(text));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): string {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return new TextDecoder().decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
}
