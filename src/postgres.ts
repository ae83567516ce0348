/**
 * `runway/postgres`, opt-in: a postgres.js pool with every bound explicit,
 * its readiness check and cleanup, query cancellation by the request's
 * signal, migrations, and its own variables (`postgresEnv()`, listed in the
 * service's env).
 */
export { type PostgresEnv, type PostgresEnvOptions, PostgresEnvSchema, postgresEnv } from './db/env.js';
export { databaseProblem } from './db/errors.js';
export { type Migration, MigrationError, migrate } from './db/migrate.js';
export { type DatabaseDeps, type DatabaseOptions, openDatabase, runMigrations } from './db/open-database.js';
export { createDb, type Db, type DbOptions, type Sql, withSignal } from './db/pool.js';
