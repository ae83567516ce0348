import postgres from 'postgres';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
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

describe('a client leaving while the database holds its query', () => {
  async function waitingOnLock(admin: ReturnType<typeof adminSql>) {
    const [row] =
      await admin`select count(*)::int as n from pg_stat_activity where query like '%locked-probe%' and application_name = 'runway' and state = 'active'`;
    return row?.n as number;
  }

  it('cancels a query waiting on a locked table when the client leaves, and stays up', async () => {
    const admin = adminSql();
    const url = await freshDatabase();
    const owner = postgres(url, { max: 1, onnotice: () => {} });
    onTestFinished(() => owner.end({ timeout: 1 }));
    await owner`create table lock_probe (id int)`;
    const server = await startFixture({ DATABASE_URL: url });
    const conn = await rawConnect(server.port);
    let release: (() => void) | undefined;
    const held = owner.begin(async (tx) => {
      await tx`lock table lock_probe in access exclusive mode`;
      conn.socket.write('GET /db/locked HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    await server.waitForLog((line) => line.message === 'db locked started');
    for (let i = 0; i < 100 && (await waitingOnLock(admin)) === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await waitingOnLock(admin)).toBe(1);
    conn.socket.destroy();
    let left = await waitingOnLock(admin);
    for (let i = 0; i < 100 && left > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = await waitingOnLock(admin);
    }
    expect(left).toBe(0);
    release?.();
    await held;
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
    expect(server.proc.exitCode).toBeNull();
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });

  it('rolls a transaction back when the client leaves between its queries, and stays up', async () => {
    const server = await startFixture({ DATABASE_URL: serverUrl });
    const conn = await rawConnect(server.port);
    conn.socket.write('GET /db/tx-after-abort HTTP/1.1\r\nHost: x\r\n\r\n');
    await server.waitForLog((line) => line.message === 'db tx first query done');
    conn.socket.destroy();
    await server.waitForLog((line) => line.message === 'request' && line.outcome === 'ClientGoneError');
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
    const admin = adminSql();
    const [row] =
      await admin`select count(*)::int as n from pg_stat_activity where application_name = 'runway' and state like 'idle in transaction%'`;
    expect(row?.n).toBe(0);
  });

  it('aborts a query held by a lock at the drain deadline without an unhandled error', async () => {
    const url = await freshDatabase();
    const owner = postgres(url, { max: 1, onnotice: () => {} });
    onTestFinished(() => owner.end({ timeout: 1 }));
    await owner`create table lock_probe (id int)`;
    const server = await startFixture({ DATABASE_URL: url, GRACEFUL_TIMEOUT_MS: '500' });
    let release: (() => void) | undefined;
    const request = fetchRaw(server.port, '/db/locked').catch(() => undefined);
    const held = owner.begin(async (tx) => {
      await tx`lock table lock_probe in access exclusive mode`;
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    await server.waitForLog((line) => line.message === 'db locked started');
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(1);
    release?.();
    await held;
    await request;
    expect(server.logs.filter((line) => line.severity === 'ERROR').map((line) => line.message)).toEqual([
      'drain deadline reached, closed in-flight requests',
    ]);
  });
});

describe('a database that turns read-only (a failover demoting the primary)', () => {
  it('answers writes 503 database_unavailable and turns /readyz 503, saying why, then recovers', async () => {
    const name = `t_ro_${Date.now()}`;
    const admin = adminSql();
    await admin.unsafe(`create database ${name}`);
    onTestFinished(async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
    });
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    const server = await startFixture({ DATABASE_URL: url.href });
    expect((await fetchRaw(server.port, '/db/write', { method: 'POST' })).status).toBe(200);
    await admin.unsafe(`alter database ${name} set default_transaction_read_only = on`);
    // New sessions read the setting: end the pool's, as a failover does.
    await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name} and application_name = 'runway'`;
    let write = await fetchRaw(server.port, '/db/write', { method: 'POST' });
    for (let i = 0; i < 20 && write.status !== 503; i++)
      write = await fetchRaw(server.port, '/db/write', { method: 'POST' });
    expect(write.status).toBe(503);
    expect(write.headers['retry-after']).toBe('2');
    expect(JSON.parse(write.body)).toMatchObject({ code: 'database_unavailable' });
    let ready = await fetchRaw(server.port, '/readyz');
    for (let i = 0; i < 50 && ready.status !== 503; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      ready = await fetchRaw(server.port, '/readyz');
    }
    expect(ready.status).toBe(503);
    const failed = await server.waitForLog((line) => line.message === 'readiness check failed');
    expect(failed.reason).toContain('read-only');
    // The 503's access line is ERROR, as every 5xx; nothing else is (no stack per request).
    expect(server.logs.filter((line) => line.severity === 'ERROR' && line.message !== 'request')).toEqual([]);
    await admin.unsafe(`alter database ${name} set default_transaction_read_only = off`);
    await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name} and application_name = 'runway'`;
    let back = await fetchRaw(server.port, '/readyz');
    for (let i = 0; i < 50 && back.status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      back = await fetchRaw(server.port, '/readyz');
    }
    expect(back.status).toBe(200);
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
