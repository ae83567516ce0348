import postgres from 'postgres';
import type { Logger } from '../runtime/logger.js';

/**
 * One postgres.js pool with every bound explicit. Connecting is lazy: the
 * server listens at once and the first query (or readiness ping) connects.
 * `statement_timeout` is set on the server side, so a runaway query is
 * stopped by Postgres even if this process is wedged.
 */

export interface DbOptions {
  url: string;
  poolMax: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  statementTimeoutMs: number;
  log: Logger;
  /** Extra connection parameters (tests set `search_path`). */
  connection?: Record<string, string | number | boolean>;
}

export type Sql = postgres.Sql;

export interface Db {
  sql: Sql;
  /** `select 1` under `signal`; rejects when the database does not answer. */
  ping(signal?: AbortSignal): Promise<void>;
  /** Ends the pool: in-flight queries get `timeoutMs` to finish, then connections are closed. */
  end(timeoutMs: number): Promise<void>;
}

export function createDb(options: DbOptions): Db {
  const sql = postgres(options.url, {
    max: options.poolMax,
    // postgres.js takes these in seconds.
    connect_timeout: options.connectTimeoutMs / 1000,
    idle_timeout: options.idleTimeoutMs / 1000,
    max_lifetime: options.maxLifetimeMs / 1000,
    connection: {
      application_name: 'runway',
      statement_timeout: options.statementTimeoutMs,
      ...options.connection,
    },
    onnotice: (notice) => options.log.debug('postgres notice', { notice: notice.message }),
  });
  return {
    sql,
    async ping(signal) {
      await withSignal(sql`select 1`, signal);
    },
    async end(timeoutMs) {
      await sql.end({ timeout: timeoutMs / 1000 });
    },
  };
}

/**
 * Runs a postgres.js query under an AbortSignal: when the signal aborts (the
 * client left, the handler deadline passed, the drain deadline hit) the query
 * is cancelled on the server with a CancelRequest, not just abandoned here.
 */
export function withSignal<T extends PromiseLike<unknown> & { cancel(): unknown }>(
  query: T,
  signal?: AbortSignal,
): Promise<Awaited<T>> {
  if (!signal) return Promise.resolve(query);
  if (signal.aborted) {
    void query.cancel();
    return Promise.reject(signal.reason);
  }
  const onAbort = () => void query.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  return Promise.resolve(query).finally(() => signal.removeEventListener('abort', onAbort));
}
