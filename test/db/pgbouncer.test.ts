import { randomUUID } from 'node:crypto';
import { sign } from 'hono/jwt';
import postgres from 'postgres';
import { describe, expect, it, onTestFinished } from 'vitest';
import { requireRealServer } from '../db-helpers.js';
import { fetchRaw, startFixture } from '../helpers.js';
import { startPgBouncer } from '../pgbouncer.js';

/**
 * runway through a real PgBouncer in transaction mode, the pooler in front of
 * many hosted Postgres services: with DB_POOLER=transaction the notes API,
 * its transactions and the start-up migrations work; without it, readiness
 * fails and the log says why. Needs the real server (PgBouncer connects to
 * it over TCP), so it runs with TEST_DATABASE_URL, like real-postgres.test.ts.
 */
const serverUrl = requireRealServer();
const KEY = 'pgbouncer-test-signing-key-0123456789abcdef';

/** A database of the test's own on the real server: PgBouncer passes no search_path. */
async function freshDatabaseName(): Promise<string> {
  const name = `t_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  onTestFinished(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end({ timeout: 1 });
  });
  return name;
}

async function token(sub: string) {
  const now = Math.floor(Date.now() / 1000);
  return sign({ sub, iat: now, exp: now + 600 }, KEY, 'HS256');
}

describe('behind PgBouncer in transaction mode', () => {
  it('serves the notes API, its transactions and the start-up migrations with DB_POOLER=transaction', async () => {
    const bouncer = await startPgBouncer(serverUrl);
    const server = await startFixture(
      {
        DATABASE_URL: bouncer.url(await freshDatabaseName()),
        DB_POOLER: 'transaction',
        MIGRATE_ON_START: 'true',
        JWT_SIGNING_KEY: KEY,
      },
      'started',
      { program: 'dist/server.js' },
    );
    expect((await fetchRaw(server.port, '/readyz')).status).toBe(200);
    const authorization = `Bearer ${await token('bouncer')}`;
    const json = { authorization, 'content-type': 'application/json' };
    // Enough requests that consecutive statements land on different server connections.
    const created = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        fetchRaw(server.port, '/v1/notes', {
          method: 'POST',
          headers: { ...json, 'idempotency-key': `key-${i}` },
          body: JSON.stringify({ title: `note ${i}` }),
        }),
      ),
    );
    expect(created.map((reply) => reply.status)).toEqual(Array(20).fill(201));
    const first = JSON.parse(created[0]?.body ?? '{}') as { id: string };
    const patched = await fetchRaw(server.port, `/v1/notes/${first.id}`, {
      method: 'PATCH',
      headers: { ...json, 'if-match': created[0]?.headers.etag as string },
      body: JSON.stringify({ body: 'edited' }),
    });
    expect(patched.status).toBe(200);
    const list = await fetchRaw(server.port, '/v1/notes?limit=100', { headers: { authorization } });
    expect((JSON.parse(list.body) as { items: unknown[] }).items).toHaveLength(20);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });

  it('says in the log why readiness fails without DB_POOLER=transaction', async () => {
    const bouncer = await startPgBouncer(serverUrl);
    const server = await startFixture({ DATABASE_URL: bouncer.url(await freshDatabaseName()) });
    const ready = await fetchRaw(server.port, '/readyz');
    expect(ready.status).toBe(503);
    const failed = await server.waitForLog((line) => line.message === 'readiness check failed');
    expect(failed).toMatchObject({ severity: 'WARNING', check: 'db' });
    expect(String(failed.reason)).toContain('unsupported startup parameter: statement_timeout');
    expect(String(failed.reason)).toContain('set DB_POOLER=transaction');
    // PgBouncer's refusal (SQLSTATE 08P01) is the database being unavailable to this instance: 503, not 500.
    const api = await fetchRaw(server.port, '/db/now');
    expect(api.status).toBe(503);
    expect(api.headers['retry-after']).toBe('2');
    expect(JSON.parse(api.body)).toMatchObject({ code: 'database_unavailable' });
  });
});
