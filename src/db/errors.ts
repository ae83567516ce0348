import { HttpProblem } from '../runtime/problem.js';

/**
 * A database that cannot be reached is the server's problem, not the
 * client's: 503 with Retry-After, so clients and load balancers back off and
 * retry, instead of a 500 or a hang.
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '25006', // read_only_sql_transaction: a replica, or a primary being demoted in a failover
]);

// SQLSTATE class 08, connection exception (08006 connection failure, 08P01
// protocol violation: PgBouncer refusing a startup parameter, ...).
const CONNECTION_EXCEPTION = /^08[0-9A-Z]{3}$/;

// SQLSTATE class 22, data exception: a value the database cannot store or
// compare (22P05 untranslatable character, 22021 invalid byte sequence, 22008
// datetime out of range, 22003 numeric out of range, ...).
const DATA_EXCEPTION = /^22[0-9A-Z]{3}$/;

export function databaseProblem(error: unknown): HttpProblem | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === '57014') {
    // query_canceled: statement_timeout, or our own cancel at a deadline.
    return new HttpProblem(503, {
      code: 'query_timeout',
      detail: 'the database did not answer in time',
      headers: { 'retry-after': '2' },
    });
  }
  if (DATA_EXCEPTION.test(code)) {
    // Validation should have refused the value; this is the safety net that
    // keeps it a client error. Postgres' message may quote the input: not sent.
    return new HttpProblem(400, {
      code: 'invalid_value',
      detail: 'a value in the request cannot be stored or compared; check the text and numbers sent',
    });
  }
  if (!UNAVAILABLE_CODES.has(code) && !CONNECTION_EXCEPTION.test(code)) return undefined;
  return new HttpProblem(503, {
    code: 'database_unavailable',
    detail: 'the database is unavailable; retry shortly',
    headers: { 'retry-after': '2' },
  });
}
