import type { Logger } from '../runtime/logger.js';
import { sha256Hex } from '../runtime/sha256.js';
import type { Sql } from './pool.js';

/**
 * Forward-only SQL migrations. Each runs in its own transaction and is
 * recorded with a checksum. Each transaction first takes a transaction-level
 * Postgres advisory lock, so instances started together never race (the
 * second waits, then finds the migration applied). Transaction-level, not a
 * session lock on a reserved connection: behind a pooler in transaction mode
 * (DB_POOLER=transaction) a session lock would be taken on one server
 * connection, stay there after the statement, and be released on another.
 * An applied migration whose file changed is an error naming the file:
 * history is not rewritten.
 */

export interface Migration {
  name: string;
  sql: string;
}

// An arbitrary, fixed 64-bit key: "runway migrations" for pg_advisory_xact_lock.
const LOCK_KEY = 7_263_011_001n;

export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

export function checksum(text: string): Promise<string> {
  return sha256Hex(text);
}

async function lockAndReadApplied(tx: Sql): Promise<Map<string, string>> {
  await tx`select pg_advisory_xact_lock(${LOCK_KEY.toString()}::bigint)`;
  await tx`
    create table if not exists runway_migrations (
      name text primary key,
      checksum text not null,
      applied_at timestamptz not null default now()
    )`;
  const rows = await tx<{ name: string; checksum: string }[]>`select name, checksum from runway_migrations`;
  return new Map(rows.map((row) => [row.name, row.checksum]));
}

export async function migrate(sql: Sql, migrations: readonly Migration[], log: Logger): Promise<string[]> {
  const applied = await sql.begin((tx) => lockAndReadApplied(tx as unknown as Sql));
  for (const [name, recorded] of applied) {
    const migration = migrations.find((m) => m.name === name);
    if (migration && (await checksum(migration.sql)) !== recorded) {
      throw new MigrationError(`migration ${name} was edited after it was applied; add a new migration instead`);
    }
  }
  const done: string[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.name)) continue;
    const startedAt = performance.now();
    const sum = await checksum(migration.sql);
    const ran = await sql
      .begin(async (tx) => {
        // Another instance may have applied it while this one waited for the lock.
        if ((await lockAndReadApplied(tx as unknown as Sql)).has(migration.name)) return false;
        await tx.unsafe(migration.sql);
        await tx`insert into runway_migrations (name, checksum) values (${migration.name}, ${sum})`;
        return true;
      })
      .catch((error: unknown) => {
        throw new MigrationError(`migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
      });
    if (!ran) continue;
    log.info('migration applied', { migration: migration.name, ms: Math.round(performance.now() - startedAt) });
    done.push(migration.name);
  }
  return done;
}
