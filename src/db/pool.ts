import postgres from 'postgres';
import type { Logger } from '../runtime/logger.js';

/**
 * One postgres.js pool with every bound explicit. Connecting is lazy: the
 * server listens at once and the first query (or readiness ping) connects.
 * `statement_timeout` is set on the server side, so a runaway query is
 * stopped by Postgres even if this process is wedged.
 *
 * Behind a pooler in transaction mode (`pooler: 'transaction'`, PgBouncer's
 * `pool_mode = transaction`) consecutive statements may run on different
 * server connections, so the pool sends no startup parameter PgBouncer
 * rejects (it closes the connection on `statement_timeout`: "unsupported
 * startup parameter") and prepares no named statements (one prepared on one
 * server connection does not exist on the next). The statement timeout is
 * then the database role's (`alter role … set statement_timeout`).
 */

export interface DbOptions {
  url: string;
  poolMax: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  statementTimeoutMs: number;
  /** `transaction`: a pooler in transaction mode sits in front (DB_POOLER). */
  pooler?: 'none' | 'transaction';
  log: Logger;
  /** Extra connection parameters (tests set `search_path`). */
  connection?: Record<string, string | number | boolean>;
}

export type Sql = postgres.Sql;

export interface Db {
  sql: Sql;
  /**
   * Under `signal`, rejects when the database does not answer, or answers read-only (a replica, or a
   * primary being demoted: every write would fail), with a message that holds no secret.
   */
  ping(signal?: AbortSignal): Promise<void>;
  /** Ends the pool: in-flight queries get `timeoutMs` to finish, then connections are closed. */
  end(timeoutMs: number): Promise<void>;
}

export function createDb(options: DbOptions): Db {
  const pooled = options.pooler === 'transaction';
  const sql = postgres(options.url, {
    max: options.poolMax,
    // postgres.js takes these in seconds.
    connect_timeout: options.connectTimeoutMs / 1000,
    idle_timeout: options.idleTimeoutMs / 1000,
    max_lifetime: options.maxLifetimeMs / 1000,
    // On (the default), although it costs a catalog query on every new connection: the notes store sends arrays
    // (`any(${versions}::text[])`), which without it fail with 22P02. Its failure path, an unhandled rejection
    // upstream, is patched (scripts/driver-patches.ts, porsager/postgres#1192).
    fetch_types: true,
    backoff: reconnectBackoffSeconds,
    ...(pooled && { prepare: false }),
    connection: {
      application_name: 'runway',
      ...(!pooled && { statement_timeout: options.statementTimeoutMs }),
      ...options.connection,
    },
    onnotice: (notice) => options.log.debug('postgres notice', { notice: notice.message }),
  });
  return {
    sql,
    async ping(signal) {
      let rows: { readOnly: string }[];
      try {
        rows = await withSignal(
          sql<{ readOnly: string }[]>`select current_setting('transaction_read_only') as "readOnly"`,
          signal,
        );
      } catch (error) {
        throw pingError(error, options.url);
      }
      if (rows[0]?.readOnly === 'on')
        throw new Error('the database is read-only: a replica, or a primary being demoted');
    },
    async end(timeoutMs) {
      await sql.end({ timeout: timeoutMs / 1000 });
    },
  };
}

/**
 * Runs a postgres.js query under an AbortSignal. When the signal aborts (the
 * client left, the handler deadline passed, the drain deadline hit) the
 * caller gets the signal's reason at once, not Postgres' generic 57014, so it
 * can tell "the client left" from "the database timed out", and the query is
 * cancelled on the server with a CancelRequest, not just abandoned here.
 * The cancel is best effort: it needs a new connection to the server, which
 * fails exactly when the database is unreachable (the statement then ends at
 * `statement_timeout` or with its connection). That failure, and whatever the
 * abandoned query settles with later, is caught here, never left as an
 * unhandled rejection (docs/proof.md, Faults). The caller does not wait for either:
 * a black-holed database would hold it forever.
 */
export function withSignal<T extends PromiseLike<unknown> & { cancel(): unknown }>(
  query: T,
  signal?: AbortSignal,
): Promise<Awaited<T>> {
  if (!signal) return Promise.resolve(query);
  // A postgres.js query is lazy: one never awaited is never sent, so there
  // is nothing to cancel. Cancelling it would reject the query's own
  // promise, which nobody holds.
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<Awaited<T>>((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason);
      Promise.resolve(query.cancel()).catch(ignore);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve(query).then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value as Awaited<T>);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function ignore() {}

/**
 * How long the driver waits before its next connection attempt after
 * `retries` failed ones in a row: postgres.js's own curve (jittered 3^n/100 s),
 * capped at 2 s instead of its 20 s. A query that needs a connection waits for
 * that attempt, so during a long outage the uncapped curve held each request
 * 10-20 s, past the handler deadline (a 503 `handler_timeout` instead of
 * `database_unavailable` with Retry-After), and the first request after the
 * database came back waited as long. At 2 s a pool of DB_POOL_MAX connections
 * tries at most DB_POOL_MAX / 2 connects a second against a database that is down.
 */
function reconnectBackoffSeconds(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 2);
}

/**
 * The readiness check's failure, as health.ts logs it: the driver's code and
 * message, never the password, and a hint for the one misconfiguration whose
 * message does not say what to do.
 */
function pingError(error: unknown, url: string): Error {
  const code = (error as { code?: unknown } | null)?.code;
  let message = error instanceof Error ? error.message : String(error);
  const password = passwordOf(url);
  if (password) message = message.replaceAll(password, '***').replaceAll(encodeURIComponent(password), '***');
  if (/unsupported startup parameter/i.test(message)) {
    message += ' (a pooler in transaction mode? set DB_POOLER=transaction)';
  }
  return Object.assign(new Error(message), typeof code === 'string' ? { code } : {});
}

function passwordOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}
