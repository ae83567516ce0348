import type { Config } from '../config.js';
import type { Health } from '../runtime/health.js';
import type { CleanupHook } from '../runtime/lifecycle.js';
import type { Logger } from '../runtime/logger.js';
import { migrate } from './migrate.js';
import { migrations } from './migrations/index.js';
import { createDb, type Db } from './pool.js';

/**
 * Wires the pool into the process: readiness check `db` (a ping under its own
 * bound), a cleanup hook that ends the pool after the drain, and the
 * migrations when MIGRATE_ON_START=true.
 */
export interface DatabaseDeps {
  config: Config;
  log: Logger;
  health: Health;
  onCleanup(name: string, hook: CleanupHook): void;
}

export function poolFor(config: Config, log: Logger, url: string): Db {
  return createDb({ url, ...config.db, log });
}

export async function openDatabase({ config, log, health, onCleanup }: DatabaseDeps): Promise<Db | undefined> {
  if (!config.databaseUrl) {
    log.warn('no DATABASE_URL: running without a database');
    return undefined;
  }
  const db = poolFor(config, log, config.databaseUrl);
  health.register('db', (signal) => db.ping(signal));
  onCleanup('db', () => db.end(config.cleanupTimeoutMs));
  if (config.migrateOnStart) {
    const applied = await migrate(db.sql, migrations, log);
    log.info('migrations up to date', { applied: applied.length, total: migrations.length });
  }
  return db;
}

/** `node dist/server.js migrate`: apply pending migrations, then end the pool. */
export async function runMigrations(config: Config, log: Logger): Promise<void> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required to migrate');
  const db = poolFor(config, log, config.databaseUrl);
  try {
    const applied = await migrate(db.sql, migrations, log);
    log.info('migrations up to date', { applied: applied.length, total: migrations.length });
  } finally {
    await db.end(config.cleanupTimeoutMs);
  }
}
