import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { sign } from 'hono/jwt';
import { expect } from 'vitest';
import { type Fixture, type LogLine, startFixture } from '../helpers.js';

/**
 * The built artifact under test, `CHAOS_BUNDLE` or dist/server.js, in a child
 * process with a clean environment (startFixture: PATH, PORT=0,
 * HOST=127.0.0.1 and what is given here), and what every scenario checks
 * after it: the process is up, it logged no fatal error, unhandled
 * rejection or uncaught exception, wrote nothing to stderr, and /healthz is 200.
 */

export const BUNDLE = resolve(process.env.CHAOS_BUNDLE ?? 'dist/server.js');

/** One signing key per file; tokens are minted the way scripts/token.ts does. */
export const SIGNING_KEY = randomBytes(48).toString('base64');

// Smaller than the defaults, so faults resolve within a scenario; config
// requires DB_STATEMENT_TIMEOUT_MS < HANDLER_TIMEOUT_MS.
export const CHAOS_TIMEOUTS = {
  READ_HEADER_TIMEOUT_MS: '3000',
  READ_TIMEOUT_MS: '6000',
  DB_STATEMENT_TIMEOUT_MS: '2000',
  HANDLER_TIMEOUT_MS: '3000',
  WRITE_TIMEOUT_MS: '5000',
  DB_CONNECT_TIMEOUT_MS: '1000',
  // Idle pooled connections go soon, so the pool's size falls back to its baseline.
  DB_IDLE_TIMEOUT_MS: '2000',
  GRACEFUL_TIMEOUT_MS: '5000',
};

export interface Bundle extends Fixture {
  pid: number;
}

export async function startBundle(env: Record<string, string>, waitFor = 'started'): Promise<Bundle> {
  const server = await startFixture(
    { JWT_SIGNING_KEY: SIGNING_KEY, MIGRATE_ON_START: 'true', ...CHAOS_TIMEOUTS, ...env },
    waitFor,
    { program: BUNDLE },
  );
  return { ...server, pid: server.proc.pid as number };
}

export async function tokenFor(sub: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return sign({ sub, iat: now, exp: now + 3600 }, SIGNING_KEY, 'HS256');
}

const FATAL = /fatal error|unhandled|uncaught/i;

/** Log lines that mean the process met an error nobody handled. */
export function fatalLines(server: Fixture): LogLine[] {
  return server.logs.filter((line) => FATAL.test(line.message) || line.severity === 'NOT_JSON');
}

/** After the test's own SIGTERM: exit 0, no fatal line, no ERROR line (`also` filters out the ones a case expects). */
export function expectCleanExit(server: Fixture, exit: { code: number | null }, also = (_line: LogLine) => true) {
  expect(exit.code).toBe(0);
  expectNone(
    fatalLines(server).map((line) => line.message),
    'fatal log lines',
  );
  expectNone(
    server.logs.filter((line) => line.severity === 'ERROR' && also(line)).map((line) => line.message),
    'ERROR lines',
  );
}

export function rssMb(server: Bundle): number {
  const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

/** Short form of a log line for an assertion message. */
export function describeLine(line: LogLine): string {
  const error = (line.error as { message?: string } | undefined)?.message;
  const at =
    typeof line.stack_trace === 'string'
      ? line.stack_trace
          .split('\n')
          .slice(1, 3)
          .map((l) => l.trim())
      : [];
  return `"${line.message}"${error ? ` ${error}` : ''}${at.length ? ` (${at.join(' ')})` : ''}`;
}

/** The process is up, logged nothing fatal, wrote nothing to stderr, and answers /healthz 200. */
export async function expectSurvived(server: Bundle, after: string) {
  const fatal = fatalLines(server).map(describeLine);
  const exit = server.proc.exitCode ?? server.proc.signalCode;
  expect(exit, `${after}: the process exited (${exit}); its fatal lines: ${fatal.join('; ')}`).toBeNull();
  expectNone(fatal, `${after}: fatal log lines`);
  expect(server.stderr(), `${after}: stderr`).toBe('');
  const health = await send(server.port, { path: '/healthz' });
  expect(health.status, `${after}: /healthz`).toBe(200);
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The problem's `code` of a problem+json answer. */
  code?: string;
}
export type Outcome = Answer | { status: 0; error: string };

/** One request on a fresh connection, bounded by `timeoutMs`; never rejects. */
export function send(
  port: number,
  options: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: string;
    timeoutMs?: number;
    token?: string;
    /** Called once the whole request is handed to the kernel. */
    onWritten?: () => void;
  },
): Promise<Outcome> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] ??= 'application/json';
  return new Promise((done) => {
    const req = request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => {
          const answer: Answer = { status: res.statusCode ?? 0, headers: res.headers, body };
          if (String(res.headers['content-type']).startsWith('application/problem+json')) {
            try {
              answer.code = (JSON.parse(body) as { code?: string }).code;
            } catch {}
          }
          done(answer);
        });
        res.on('error', (error) => done({ status: 0, error: error.message }));
      },
    );
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', (error: NodeJS.ErrnoException) => done({ status: 0, error: error.code ?? error.message }));
    if (options.onWritten) req.once('finish', options.onWritten);
    req.end(options.body);
  });
}

/** What an outcome is, for a tally: `201`, `503 database_unavailable`, `ECONNRESET`. */
export function label(outcome: Outcome): string {
  if (outcome.status === 0) return 'error' in outcome ? outcome.error : 'no answer';
  return 'code' in outcome && outcome.code ? `${outcome.status} ${outcome.code}` : String(outcome.status);
}

export function tally(labels: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const l of labels) counts[l] = (counts[l] ?? 0) + 1;
  return counts;
}

/** `promise`, or a failure naming `what` after `ms`: every wait in the campaign is bounded. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Why the server stopped answering: its exit and fatal lines (waits briefly for the exit to be reported). */
export async function downReason(server: Bundle): Promise<string> {
  const exit = await within(server.exited, 3_000, 'the exit').catch(() => undefined);
  const fatal = fatalLines(server).map(describeLine);
  return exit
    ? `the process exited (code ${exit.code}, signal ${exit.signal}); its fatal lines: ${fatal.join('; ') || 'none'}`
    : `the process is still running; its fatal lines: ${fatal.join('; ') || 'none'}`;
}

/** Fails listing every item (vitest would elide a long array). */
export function expectNone(items: string[], what: string) {
  expect(items, `${what}: ${items.join('; ')}`).toEqual([]);
}
