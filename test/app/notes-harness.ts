import { sign } from 'hono/jwt';
import { createApp } from '../../service/app/create-app.js';
import { migrations } from '../../service/migrations/index.js';
import { migrate } from '../../src/db/migrate.js';
import { createDb } from '../../src/db/pool.js';
import { createLogger } from '../../src/runtime/logger.js';
import { freshDatabase } from '../db-helpers.js';
import { notesEnv } from './notes-env.js';

/**
 * The notes app in memory (app.request) on a fresh, migrated database, with
 * a token minter and a `call` helper; `env` adds to the config's environment,
 * `sql` reaches the database behind the app. For a `beforeAll`: it returns
 * the teardown to hand back to vitest.
 */
export const KEY = 'k'.repeat(48);
const log = createLogger({ level: 'error' });

export async function notesHarness(env: Record<string, string> = {}) {
  const teardowns: (() => Promise<void>)[] = [];
  const url = await freshDatabase((fn) => teardowns.push(fn));
  const db = createDb({
    url,
    poolMax: 12,
    connectTimeoutMs: 5_000,
    idleTimeoutMs: 10_000,
    maxLifetimeMs: 60_000,
    statementTimeoutMs: 10_000,
    log,
  });
  await migrate(db.sql, migrations, log);
  const notes = notesEnv({ DATABASE_URL: url, JWT_SIGNING_KEY: KEY, JWT_AUDIENCE: 'notes-api', ...env });
  const app = createApp({ env: notes, log, db });

  const token = async (claims: Record<string, unknown> = {}, key = KEY) => {
    const now = Math.floor(Date.now() / 1000);
    return sign({ sub: 'alice', aud: 'notes-api', exp: now + 600, iat: now, ...claims }, key, 'HS256');
  };

  const call = async (
    method: string,
    path: string,
    options: { user?: string; body?: unknown; headers?: Record<string, string> } = {},
  ) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${await token({ sub: options.user ?? 'alice' })}`,
      ...options.headers,
    };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    }
    const res = await app.request(path, { method, headers, body });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };

  const close = async () => {
    await db.end(1_000);
    for (const teardown of teardowns) await teardown();
  };
  return { app, token, call, close, db, sql: db.sql, env: notes };
}

export type NotesHarness = Awaited<ReturnType<typeof notesHarness>>;

/** The error a query (or anything awaited) fails with; throws if it succeeds. */
export async function errorOf(query: PromiseLike<unknown>): Promise<Error & { code?: string }> {
  try {
    await query;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected the query to fail');
}
