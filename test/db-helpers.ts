import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { onTestFinished } from 'vitest';

/**
 * Where the tests find Postgres. With TEST_DATABASE_URL (CI: the machine's
 * PostgreSQL 15) every test gets a schema of its own on that server. Without
 * it, every test gets a whole embedded Postgres of its own (PGlite served on
 * loopback by pglite-socket), so `npm test` passes on a machine without a
 * Postgres server. PGlite is one backend behind that socket: concurrency,
 * cancellation and pg_stat_activity are real-server matters, and their tests
 * live in test/db/real-postgres.test.ts, which runs only with TEST_DATABASE_URL.
 */
export const realServerUrl = process.env.TEST_DATABASE_URL || undefined;

export function requireRealServer(): string {
  if (!realServerUrl) throw new Error('TEST_DATABASE_URL is required for this test file');
  return realServerUrl;
}

/** A connection to the real server for assertions (pg_stat_activity). */
export function adminSql() {
  const sql = postgres(requireRealServer(), { max: 2, onnotice: () => {} });
  onTestFinished(() => sql.end({ timeout: 1 }));
  return sql;
}

type Teardown = (fn: () => Promise<void>) => void;

/**
 * The URL of an empty database of this test's own, gone afterwards. Per test
 * by default; a `beforeAll` passes its own collector and runs it from the
 * teardown it returns (hooks cannot register hooks).
 */
export async function freshDatabase(teardown: Teardown = onTestFinished): Promise<string> {
  return realServerUrl ? freshSchema(realServerUrl, teardown) : embeddedDatabase(teardown);
}

async function freshSchema(serverUrl: string, teardown: Teardown): Promise<string> {
  const schema = `t_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await sql.unsafe(`create schema ${schema}`);
  teardown(async () => {
    await sql.unsafe(`drop schema ${schema} cascade`);
    await sql.end({ timeout: 1 });
  });
  const url = new URL(serverUrl);
  // postgres.js sends unknown query parameters as connection parameters.
  url.searchParams.set('search_path', schema);
  return url.href;
}

async function embeddedDatabase(teardown: Teardown): Promise<string> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 100 });
  await server.start();
  teardown(async () => {
    await server.stop();
    await db.close();
  });
  return `postgres://postgres@${server.getServerConn()}/postgres`;
}
