import { type Sql, withSignal } from '../../db/pool.js';
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
          insert into notes (id, owner, title, body, created_at, updated_at)
          values (${crypto.randomUUID()}, ${owner}, ${input.title}, ${input.body}, clock_timestamp(), clock_timestamp())
          returning ${columns(tx)}`,
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
          update notes set
            title = coalesce(${patch.title ?? null}::text, title),
            body = coalesce(${patch.body ?? null}::text, body),
            updated_at = clock_timestamp()
          where id = ${id} and owner = ${owner}
          ${versionIn(sql, expectedVersions)}
          returning ${columns(sql)}`,
        signal,
      );
      if (row) return toStored(row);
      if (!expectedVersions) return undefined;
      return (await this.get(owner, id, signal)) ? false : undefined;
    },

    async remove(owner: string, id: string, expectedVersions: string[] | undefined, signal: AbortSignal) {
      const rows = await withSignal(
        sql`
          delete from notes where id = ${id} and owner = ${owner}
          ${versionIn(sql, expectedVersions)}
          returning id`,
        signal,
      );
      if (rows.length > 0) return true;
      if (!expectedVersions) return undefined;
      return (await this.get(owner, id, signal)) ? false : undefined;
    },
  };
}
