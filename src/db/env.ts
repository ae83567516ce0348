import * as v from 'valibot';
import { doc, type EnvPart, type EnvRule } from '../config/env-part.js';
import { integer, milliseconds } from '../config/primitives.js';
import { RuntimeEnvSchema } from '../config/variables.js';

/**
 * The variables runway/postgres reads, with their cross-checks: an app that
 * opts in lists `postgresEnv()` in its env, and they are validated with the
 * runtime's and the app's, before anything listens.
 */

const postgresUrl = v.pipe(
  v.string(),
  v.check((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'expected a URL of the form postgres://user:password@host:5432/database'),
);

export const PostgresEnvSchema = v.object({
  DATABASE_URL: v.optional(
    v.pipe(
      postgresUrl,
      doc(
        'Postgres connection URL. Without it openDatabase gives no pool; the notes service requires it when NODE_ENV=production or on Cloud Run.',
        { url: true },
      ),
    ),
  ),
  DB_POOL_MAX: v.optional(v.pipe(integer(1, 1000), doc('Most connections the pool opens.')), '10'),
  DB_CONNECT_TIMEOUT_MS: v.optional(v.pipe(milliseconds(), doc('Bound on opening one database connection.')), '5000'),
  DB_IDLE_TIMEOUT_MS: v.optional(
    v.pipe(milliseconds(), doc('An idle pooled connection is closed after this long.')),
    '60000',
  ),
  DB_MAX_LIFETIME_MS: v.optional(
    v.pipe(milliseconds(), doc('A pooled connection is replaced after this long (failovers, rotated credentials).')),
    '1800000',
  ),
  DB_STATEMENT_TIMEOUT_MS: v.optional(
    v.pipe(milliseconds(), doc('Server-side `statement_timeout` of every connection. Below HANDLER_TIMEOUT_MS.')),
    '20000',
  ),
  DB_POOLER: v.optional(
    v.pipe(
      v.picklist(['none', 'transaction'], 'expected none or transaction'),
      doc(
        '`transaction` when a pooler in transaction mode (PgBouncer `pool_mode = transaction`) sits in front: no named prepared statements and no startup parameters it rejects, so DB_STATEMENT_TIMEOUT_MS is not sent; set `statement_timeout` on the database role instead.',
      ),
    ),
    'none',
  ),
  MIGRATE_ON_START: v.optional(
    v.pipe(
      v.picklist(['true', 'false'], 'expected true or false'),
      v.transform((value) => value === 'true'),
      doc('Apply pending migrations at startup (local runs; production uses a one-off `migrate` job).'),
    ),
    'false',
  ),
});

export type PostgresEnv = v.InferOutput<typeof PostgresEnvSchema>;

export interface PostgresEnvOptions {
  /**
   * DATABASE_URL must be set when NODE_ENV=production or on Cloud Run (K_SERVICE): for an app that cannot
   * serve without its database, so a forgotten secret fails the deploy instead of every request.
   */
  requiredInProduction?: boolean;
}

// The runtime's variables the checks below read, beside this module's own: one pipe, so each check is typed by it.
const { NODE_ENV, K_SERVICE, HANDLER_TIMEOUT_MS } = RuntimeEnvSchema.entries;
const CheckedSchema = v.object({ ...PostgresEnvSchema.entries, NODE_ENV, K_SERVICE, HANDLER_TIMEOUT_MS });

const statementBound = v.pipe(
  CheckedSchema,
  v.forward(
    v.partialCheck(
      [['DB_STATEMENT_TIMEOUT_MS'], ['HANDLER_TIMEOUT_MS'], ['DATABASE_URL']],
      (env) => env.DATABASE_URL === undefined || env.DB_STATEMENT_TIMEOUT_MS < env.HANDLER_TIMEOUT_MS,
      // A statement the server still runs after the handler gave up is wasted work.
      'must be shorter than HANDLER_TIMEOUT_MS',
    ),
    ['DB_STATEMENT_TIMEOUT_MS'],
  ),
).pipe[1] as EnvRule;

const requiredInProductionRule = v.pipe(
  CheckedSchema,
  v.forward(
    v.partialCheck(
      [['DATABASE_URL'], ['NODE_ENV'], ['K_SERVICE']],
      (env) => env.DATABASE_URL !== undefined || (env.NODE_ENV !== 'production' && !env.K_SERVICE),
      'is required when NODE_ENV=production or on Cloud Run (K_SERVICE is set)',
    ),
    ['DATABASE_URL'],
  ),
).pipe[1] as EnvRule;

/** The postgres module's part of the env (env-part.ts). */
export function postgresEnv({
  requiredInProduction = false,
}: PostgresEnvOptions = {}): EnvPart<typeof PostgresEnvSchema.entries> {
  const rules = requiredInProduction ? [statementBound, requiredInProductionRule] : [statementBound];
  return { name: 'postgres', schema: PostgresEnvSchema, rules };
}
