import { type Sql, withSignal } from 'runway/postgres';
import type { NoteInput, NotePatch } from './schema.js';

/**
 * Notes in Postgres, always scoped to their owner: a note of another owner
 * is simply not found. SQL only through postgres.js tagged templates.
 */

export interface Note {
  id: string;
  title: string;
  body: string;
  createdAt: string;
  updatedAt: string;
}

interface NoteRow {
  id: string;
  title: string;
  body: string;
  created_at: Date;
  updated_at: Date;
  // Exact to the microsecond (a JS Date keeps milliseconds): the version and the cursor.
  version: string;
  created_us: string;
}

export interface StoredNote {
  note: Note;
  /** Changes on every update; the ETag is built from it. */
  version: string;
  createdUs: string;
}

const columns = (sql: Sql) =>
  sql`id, title, body, created_at, updated_at,
      (extract(epoch from updated_at) * 1000000)::bigint::text as version,
      (extract(epoch from created_at) * 1000000)::bigint::text as created_us`;

// Compared as text: a version is up to 20 digits from a client, and a cast to
// bigint would fail (22003) on one we never issued instead of matching nothing.
const versionIn = (sql: Sql, versions: string[] | undefined) =>
  versions ? sql`and (extract(epoch from updated_at) * 1000000)::bigint::text = any(${versions}::text[])` : sql``;

// Taken before a change's seq is drawn and held to the commit: an owner's changes commit in seq order
// (migrations/0003_note_changes.sql). Other owners' writes do not wait on it.
const ownerLock = (tx: Sql, owner: string) => tx`select pg_advisory_xact_lock(hashtextextended(${owner}, 0))`;

/** One change of the owner's feed: its seq is the event id. */
export interface NoteChange {
  seq: string;
  noteId: string;
  kind: 'created' | 'updated' | 'deleted';
  version: string | null;
  at: string;
}

function toStored(row: NoteRow): StoredNote {
  return {
    note: {
      id: row.id,
      title: row.title,
      body: row.body,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    },
    version: row.version,
    createdUs: row.created_us,
  };
}

export function createNoteStore(sql: Sql) {
  return {
    async insert(owner: string, input: NoteInput, signal: AbortSignal, tx: Sql = sql): Promise<StoredNote> {
      const [row] = await withSignal(
        tx<NoteRow[]>`
          with lock as (${ownerLock(tx, owner)}),
          n as (
            insert into notes (id, owner, title, body, created_at, updated_at)
            select ${crypto.randomUUID()}, ${owner}, ${input.title}, ${input.body}, clock_timestamp(), clock_timestamp()
            from lock
            returning ${columns(tx)}
          ),
          change as (insert into note_changes (owner, note_id, kind, version) select ${owner}, id, 'created', version from n)
          select * from n`,
        signal,
      );
      return toStored(row as NoteRow);
    },

    async get(owner: string, id: string, signal: AbortSignal): Promise<StoredNote | undefined> {
      const [row] = await withSignal(
        sql<NoteRow[]>`select ${columns(sql)} from notes where id = ${id} and owner = ${owner}`,
        signal,
      );
      return row && toStored(row);
    },

    /** Newest first. Keyset on (created_at, id): rows inserted meanwhile land before page one, never between pages. */
    async list(
      owner: string,
      limit: number,
      after: { createdUs: string; id: string } | undefined,
      signal: AbortSignal,
    ) {
      const rows = await withSignal(
        sql<NoteRow[]>`
          select ${columns(sql)} from notes
          where owner = ${owner}
          ${
            after
              ? sql`and (created_at, id) < (to_timestamp(${after.createdUs}::numeric / 1000000), ${after.id}::uuid)`
              : sql``
          }
          order by created_at desc, id desc
          limit ${limit + 1}`,
        signal,
      );
      return { items: rows.slice(0, limit).map(toStored), more: rows.length > limit };
    },

    /**
     * Resolves to undefined when the note does not exist, `false` when its
     * version is none of `expectedVersions` (undefined: any version).
     */
    async update(
      owner: string,
      id: string,
      patch: NotePatch,
      expectedVersions: string[] | undefined,
      signal: AbortSignal,
    ): Promise<StoredNote | undefined | false> {
      const [row] = await withSignal(
        sql<NoteRow[]>`
          with lock as (${ownerLock(sql, owner)}),
          n as (
            update notes set
              title = coalesce(${patch.title ?? null}::text, title),
              body = coalesce(${patch.body ?? null}::text, body),
              updated_at = clock_timestamp()
            from lock
            where id = ${id} and owner = ${owner}
            ${versionIn(sql, expectedVersions)}
            returning ${columns(sql)}
          ),
          change as (insert into note_changes (owner, note_id, kind, version) select ${owner}, id, 'updated', version from n)
          select * from n`,
        signal,
      );
      if (row) return toStored(row);
      if (!expectedVersions) return undefined;
      return (await this.get(owner, id, signal)) ? false : undefined;
    },

    /**
     * The owner's changes after `seq`, oldest first, and the owner's horizon (`prunedThrough`, see
     * feedBounds) read in the same statement, so from the same snapshot as the changes: the sweep
     * deletes changes and moves the horizon in one statement (feed-sweep.ts), so a page with a hole
     * the sweep made comes with a horizon above `seq`.
     */
    async changesAfter(
      owner: string,
      seq: string,
      limit: number,
      signal: AbortSignal,
    ): Promise<{ changes: NoteChange[]; prunedThrough: string }> {
      const rows = await withSignal(
        sql<
          {
            pruned: string;
            seq: string | null;
            note_id: string;
            kind: NoteChange['kind'];
            version: string | null;
            at: Date;
          }[]
        >`
          select h.pruned, c.seq, c.note_id, c.kind, c.version, c.at
          from (select coalesce((select pruned_through from note_change_horizons where owner = ${owner}), 0)::text as pruned) h
          left join lateral (
            select note_changes.seq::text as seq, note_id, kind, version, at from note_changes
            where owner = ${owner} and note_changes.seq > ${seq}::bigint
            -- The column, not the text alias: '10' sorts before '9'.
            order by note_changes.seq
            limit ${limit}
          ) c on true
          order by c.seq::bigint`,
        signal,
      );
      const changes: NoteChange[] = [];
      for (const row of rows) {
        if (row.seq === null) continue;
        changes.push({
          seq: row.seq,
          noteId: row.note_id,
          kind: row.kind,
          version: row.version,
          at: row.at.toISOString(),
        });
      }
      return { changes, prunedThrough: rows[0]?.pruned ?? '0' };
    },

    /**
     * Where the owner's feed stands: `latest`, its highest seq ('0' when none: where a new
     * subscriber starts), and `prunedThrough`, the highest seq the retention sweep deleted
     * (feed-sweep.ts): a resume below it has lost changes.
     */
    async feedBounds(owner: string, signal: AbortSignal): Promise<{ latest: string; prunedThrough: string }> {
      const [row] = await withSignal(
        sql<{ latest: string; pruned: string }[]>`
          select
            coalesce((select max(seq) from note_changes where owner = ${owner}), 0)::text as latest,
            coalesce((select pruned_through from note_change_horizons where owner = ${owner}), 0)::text as pruned`,
        signal,
      );
      const latest = BigInt(row?.latest ?? '0');
      const pruned = BigInt(row?.pruned ?? '0');
      return { latest: String(latest > pruned ? latest : pruned), prunedThrough: String(pruned) };
    },

    async remove(owner: string, id: string, expectedVersions: string[] | undefined, signal: AbortSignal) {
      const rows = await withSignal(
        sql`
          with lock as (${ownerLock(sql, owner)}),
          n as (
            delete from notes using lock where id = ${id} and owner = ${owner}
            ${versionIn(sql, expectedVersions)}
            returning id
          ),
          change as (insert into note_changes (owner, note_id, kind) select ${owner}, id, 'deleted' from n)
          select id from n`,
        signal,
      );
      if (rows.length > 0) return true;
      if (!expectedVersions) return undefined;
      return (await this.get(owner, id, signal)) ? false : undefined;
    },
  };
}
