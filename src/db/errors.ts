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
]);

export function databaseProblem(error: unknown): HttpProblem | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === '57014') {
    // query_canceled: statement_timeout, or our own cancel at a deadline.
    return new HttpProblem(503, { code: 'query_timeout', detail: 'the database did not answer in time' });
  }
  if (typeof code !== 'string' || !UNAVAILABLE_CODES.has(code)) return undefined;
  return new HttpProblem(503, {
    code: 'database_unavailable',
    detail: 'the database is unavailable; retry shortly',
    headers: { 'retry-after': '2' },
  });
}
