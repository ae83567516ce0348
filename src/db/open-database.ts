import type { Config } from '../config/schema.js';
import type { Health } from '../runtime/health.js';
import type { CleanupHook } from '../runtime/lifecycle.js';
import { errorFields, type Logger } from '../runtime/logger.js';
import type { PostgresEnv } from './env.js';
import { databaseProblem } from './errors.js';
import { type Migration, migrate } from './migrate.js';
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
  config: Pick<Config, 'shutdown'>;
  /** The variables of postgresEnv() (env.ts), parsed. */
  env: PostgresEnv;
  log: Logger;
  health: Health;
  onCleanup(name: string, hook: CleanupHook): void;
  /** Aborted when shutdown begins: start-up stops waiting for the database. */
  shutdownSignal: AbortSignal;
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5_000;

export interface DatabaseOptions {
  /** The app's migrations, in order (migrate.ts): applied by MIGRATE_ON_START=true and by runMigrations. */
  migrations?: readonly Migration[];
}

export function poolFor(env: PostgresEnv, log: Logger, url: string): Db {
  return createDb({
    url,
    poolMax: env.DB_POOL_MAX,
    connectTimeoutMs: env.DB_CONNECT_TIMEOUT_MS,
    idleTimeoutMs: env.DB_IDLE_TIMEOUT_MS,
    maxLifetimeMs: env.DB_MAX_LIFETIME_MS,
    statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS,
    pooler: env.DB_POOLER,
    log,
  });
}

export async function openDatabase(
  { config, env, log, health, onCleanup, shutdownSignal }: DatabaseDeps,
  { migrations = [] }: DatabaseOptions = {},
): Promise<Db | undefined> {
  if (!env.DATABASE_URL) {
    log.warn('no DATABASE_URL: running without a database');
    return undefined;
  }
  const db = poolFor(env, log, env.DATABASE_URL);
  health.register('db', (signal) => db.ping(signal));
  // The pool gets a little less than the cleanup bound: past its own timeout postgres.js destroys
  // the connections and returns, which must happen before the lifecycle's bound calls the hook
  // timed out (exit 1) — with the same number it lost the race whenever end() waited at all, as
  // for the Terminate it sends on a connection that no longer answers.
  onCleanup('db', () =>
    db.end(Math.max(0, config.shutdown.cleanupTimeoutMs - Math.min(250, config.shutdown.cleanupTimeoutMs / 4))),
  );
  if (env.MIGRATE_ON_START) {
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

/** A `migrate` command (`node dist/server.js migrate`): apply pending migrations, then end the pool. */
export async function runMigrations(
  { config, env, log }: Pick<DatabaseDeps, 'config' | 'env' | 'log'>,
  migrations: readonly Migration[],
): Promise<void> {
  if (!env.DATABASE_URL) throw new Error('DATABASE_URL is required to migrate');
  const db = poolFor(env, log, env.DATABASE_URL);
  try {
    const applied = await migrate(db.sql, migrations, log);
    log.info('migrations up to date', { applied: applied.length, total: migrations.length });
  } finally {
    await db.end(config.shutdown.cleanupTimeoutMs);
  }
}
