import { beforeAll, describe, expect, it } from 'vitest';
import { type Migration, migrate } from '../../src/db/migrate.js';
import { createDb } from '../../src/db/pool.js';
import { createLogger } from '../../src/runtime/logger.js';
import { type NotesHarness, notesHarness } from '../app/notes-harness.js';
import { adminSql, freshDatabase, requireRealServer } from '../db-helpers.js';
import { fetchRaw, rawConnect, startFixture } from '../helpers.js';

/**
 * What only a real Postgres server can prove: queries cancelled on the
 * server (watched in pg_stat_activity), statement_timeout, and concurrency
 * between connections (advisory locks, racing transactions). The embedded
 * PGlite is one backend behind its socket, so this file runs only with
 * TEST_DATABASE_URL (vitest.config.ts leaves it out otherwise, and says so);
 * .ci/run always sets it.
 */
const serverUrl = requireRealServer();
const log = createLogger({ level: 'error' });

describe('query cancellation on the server', () => {
  it('cancels the query on the server when the client goes away', async () => {
    const admin = adminSql();
    const server = await startFixture({ DATABASE_URL: serverUrl });
    const tag = `cancel-${Date.now()}`;
    const conn = await rawConnect(server.port);
    conn.socket.write(`GET /db/sleep?s=30&tag=${tag} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const running = async () =>
      (
        await admin`select count(*)::int as n from pg_stat_activity where query like ${`%pg_sleep%`} and state = 'active' and query like '%tag%' and pid <> pg_backend_pid()`
      )[0]?.n as number;
    for (let i = 0; i < 100 && (await running()) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await running()).toBeGreaterThan(0);
    conn.socket.destroy();
    let left = await running();
    for (let i = 0; i < 100 && left > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = await running();
    }
    expect(left).toBe(0);
  });

  it('cancels the query on the server at the handler deadline and answers 503', async () => {
    const admin = adminSql();
    const server = await startFixture({
      DATABASE_URL: serverUrl,
      HANDLER_TIMEOUT_MS: '500',
      DB_STATEMENT_TIMEOUT_MS: '400',
    });
    const reply = await fetchRaw(server.port, '/db/sleep?s=0.3');
    expect(reply.status).toBe(200);
    const slow = await fetchRaw(server.port, '/db/sleep?s=20');
    expect([503]).toContain(slow.status);
    const [row] =
      await admin`select count(*)::int as n from pg_stat_activity where query like '%pg_sleep%' and application_name = 'runway' and state = 'active'`;
    expect(row?.n).toBe(0);
  });

  it('cancels the query on the server at the drain deadline', async () => {
    const admin = adminSql();
    const server = await startFixture({ DATABASE_URL: serverUrl, GRACEFUL_TIMEOUT_MS: '500' });
    const tag = `drain-${Date.now()}`;
    const request = fetchRaw(server.port, `/db/sleep?s=15&tag=${tag}`).catch(() => undefined);
    await server.waitForLog((line) => line.message === 'db sleep started');
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(1);
    await request;
    const [row] =
      await admin`select count(*)::int as n from pg_stat_activity where query like '%pg_sleep%' and application_name = 'runway' and state = 'active'`;
    expect(row?.n).toBe(0);
  });
});

describe('concurrency', () => {
  it('lets two migrators started together apply each migration exactly once', async () => {
    const url = await freshDatabase();
    const [first, second] = [0, 1].map(() =>
      createDb({
        url,
        poolMax: 2,
        connectTimeoutMs: 5_000,
        idleTimeoutMs: 10_000,
        maxLifetimeMs: 60_000,
        statementTimeoutMs: 10_000,
        log,
      }),
    );
    if (!first || !second) throw new Error('two pools expected');
    try {
      const slow: Migration[] = [{ name: '0001_slow.sql', sql: 'select pg_sleep(0.5); create table slow (id int);' }];
      const [a, b] = await Promise.all([migrate(first.sql, slow, log), migrate(second.sql, slow, log)]);
      expect([...a, ...b]).toEqual(['0001_slow.sql']);
      expect(await first.sql`select count(*)::int as n from runway_migrations`).toEqual([{ n: 1 }]);
    } finally {
      await Promise.all([first.end(1_000), second.end(1_000)]);
    }
  });

  describe('Idempotency-Key under a race', () => {
    let harness: NotesHarness;
    beforeAll(async () => {
      harness = await notesHarness();
      return () => harness.close();
    });

    it('creates exactly one row for ten concurrent requests with one key', async () => {
      const user = `idem3-${Date.now()}`;
      const headers = { 'idempotency-key': 'race' };
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          harness.call('POST', '/v1/notes', { user, body: { title: 'raced' }, headers }),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(Array(10).fill(201));
      expect(new Set(results.map((r) => r.json.id)).size).toBe(1);
      expect((await harness.call('GET', '/v1/notes', { user })).json.items).toHaveLength(1);
    });
  });
});
