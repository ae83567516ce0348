import type { Config } from '../config/schema.js';
import type { Health } from '../runtime/health.js';
import type { CleanupHook } from '../runtime/lifecycle.js';
import { errorFields, type Logger } from '../runtime/logger.js';
import { databaseProblem } from './errors.js';
import { migrate } from './migrate.js';
import { migrations } from './migrations/index.js';
import { createDb, type Db } from './pool.js';

/**
 * Wires the pool into the process: readiness check `db` (a ping under its own
 * bound), a cleanup hook that ends the pool after the drain, and the
 * migrations when MIGRATE_ON_START=true.
 *
 * Start-up migrations wait for a database that is not there yet (a restart,
 * a failover, the database starting after the service): each attempt that
 * fails because the database is unavailable is logged and retried, with a
 * capped backoff, until it succeeds or shutdown begins. Meanwhile /healthz is
 * 200 and /readyz 503 (`startup: pending`). Any other failure (a migration's
 * SQL, an edited migration) is final: the process exits 1 and says why.
 */
export interface DatabaseDeps {
  config: Config;
  log: Logger;
  health: Health;
  onCleanup(name: string, hook: CleanupHook): void;
  /** Aborted when shutdown begins: start-up stops waiting for the database. */
  shutdownSignal: AbortSignal;
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5_000;

export function poolFor(config: Config, log: Logger, url: string): Db {
  return createDb({ url, ...config.db, log });
}

export async function openDatabase({
  config,
  log,
  health,
  onCleanup,
  shutdownSignal,
}: DatabaseDeps): Promise<Db | undefined> {
  if (!config.databaseUrl) {
    log.warn('no DATABASE_URL: running without a database');
    return undefined;
  }
  const db = poolFor(config, log, config.databaseUrl);
  health.register('db', (signal) => db.ping(signal));
  // The pool gets a little less than the cleanup bound: past its own timeout postgres.js destroys
  // the connections and returns, which must happen before the lifecycle's bound calls the hook
  // timed out (exit 1) — with the same number it lost the race whenever end() waited at all, as
  // for the Terminate it sends on a connection that no longer answers.
  onCleanup('db', () =>
    db.end(Math.max(0, config.shutdown.cleanupTimeoutMs - Math.min(250, config.shutdown.cleanupTimeoutMs / 4))),
  );
  if (config.migrateOnStart) {
    const applied = await retryWhileUnavailable(() => migrate(db.sql, migrations, log), log, shutdownSignal);
    log.info('migrations up to date', { applied: applied.length, total: migrations.length });
  }
  return db;
}

async function retryWhileUnavailable<T>(work: () => Promise<T>, log: Logger, signal: AbortSignal): Promise<T> {
  for (let attempt = 1, waitMs = RETRY_FIRST_MS; ; attempt++, waitMs = Math.min(RETRY_MAX_MS, waitMs * 2)) {
    try {
      return await work();
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause ?? error;
      if (databaseProblem(cause)?.code !== 'database_unavailable' || signal.aborted) throw error;
      log.warn('start-up migrations wait for the database', { attempt, retryInMs: waitMs, ...errorFields(cause) });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
      });
      if (signal.aborted) throw error;
    }
  }
}

/** `node dist/server.js migrate`: apply pending migrations, then end the pool. */
export async function runMigrations(config: Config, log: Logger): Promise<void> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required to migrate');
  const db = poolFor(config, log, config.databaseUrl);
  try {
    const applied = await migrate(db.sql, migrations, log);
    log.info('migrations up to date', { applied: applied.length, total: migrations.length });
  } finally {
    await db.end(config.shutdown.cleanupTimeoutMs);
  }
}
