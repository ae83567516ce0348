import type { Logger } from '../runtime/logger.js';
import { sha256Hex } from '../runtime/sha256.js';
import type { Sql } from './pool.js';

/**
 * Forward-only SQL migrations. Each runs in its own transaction and is
 * recorded with a checksum; all of it happens under a Postgres advisory lock
 * on one reserved connection, so instances started together never race (the
 * second waits, then finds nothing left to do). An applied migration whose
 * file changed is an error naming the file: history is not rewritten.
 */

export interface Migration {
  name: string;
  sql: string;
}

// An arbitrary, fixed 64-bit key: "runway migrations" for pg_advisory_lock.
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

export async function migrate(sql: Sql, migrations: Migration[], log: Logger): Promise<string[]> {
  const connection = await sql.reserve();
  try {
    await connection`select pg_advisory_lock(${LOCK_KEY.toString()}::bigint)`;
    await connection`
      create table if not exists runway_migrations (
        name text primary key,
        checksum text not null,
        applied_at timestamptz not null default now()
      )`;
    const rows = await connection<{ name: string; checksum: string }[]>`select name, checksum from runway_migrations`;
    const applied = new Map(rows.map((row) => [row.name, row.checksum]));
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
      await connection.unsafe('begin');
      try {
        await connection.unsafe(migration.sql);
        await connection`insert into runway_migrations (name, checksum) values (${migration.name}, ${await checksum(migration.sql)})`;
        await connection.unsafe('commit');
      } catch (error) {
        await connection.unsafe('rollback');
        throw new MigrationError(`migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
      }
      log.info('migration applied', { migration: migration.name, ms: Math.round(performance.now() - startedAt) });
      done.push(migration.name);
    }
    return done;
  } finally {
    await connection`select pg_advisory_unlock(${LOCK_KEY.toString()}::bigint)`.catch(() => undefined);
    connection.release();
  }
}
