import type { Migration } from 'runway/postgres';
// `type: 'text'` makes Bun (`bun run service/server.ts`) read the file as text too.
import notes from './0001_notes.sql' with { type: 'text' };
import idempotencyRetention from './0002_idempotency_retention.sql' with { type: 'text' };
import noteChanges from './0003_note_changes.sql' with { type: 'text' };
import noteChangeHorizons from './0004_note_change_horizons.sql' with { type: 'text' };

/**
 * Every migration, in order. The SQL files are bundled into the artifact as
 * text (esbuild's text loader), so `node dist/server.js migrate` needs no
 * files beside it. A test fails when a .sql file here is missing from this list.
 */
export const migrations: Migration[] = [
  { name: '0001_notes.sql', sql: notes },
  { name: '0002_idempotency_retention.sql', sql: idempotencyRetention },
  { name: '0003_note_changes.sql', sql: noteChanges },
  { name: '0004_note_change_horizons.sql', sql: noteChangeHorizons },
];
