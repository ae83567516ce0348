/**
 * `runway/postgres/env`: runway/postgres's variables alone, for a service
 * that declares its env up front and loads its database lazily: importing
 * this loads neither the pool nor the driver (runway/postgres does).
 */
export { type PostgresEnv, type PostgresEnvOptions, PostgresEnvSchema, postgresEnv } from './db/env.js';
