import { connect, createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { adminSql, freshSchema, testDatabaseUrl, urlWithSchema } from '../db-helpers.js';
import { fetchRaw, rawConnect, spawnProgram, startFixture } from '../helpers.js';

/**
 * A TCP proxy in front of the real Postgres, so a test can cut the database
 * off (and bring it back) without touching the shared server.
 */
async function startDbProxy() {
  const target = new URL(testDatabaseUrl());
  const sockets = new Set<Socket>();
  let up = true;
  const server: Server = createServer((client) => {
    if (!up) return client.destroy();
    const upstream = connect({ host: target.hostname, port: Number(target.port || 5432) });
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  return {
    url(schema?: string) {
      const url = new URL(schema ? urlWithSchema(schema) : testDatabaseUrl());
      url.host = `127.0.0.1:${port}`;
      return url.href;
    },
    cut() {
      up = false;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      up = true;
    },
  };
}

async function readyz(port: number) {
  const reply = await fetchRaw(port, '/readyz');
  return { status: reply.status, body: JSON.parse(reply.body) };
}

describe('database readiness and lifecycle', () => {
  it('listens before the database answers and turns ready once it does', async () => {
    const server = await startFixture({ DATABASE_URL: testDatabaseUrl() });
    expect(await readyz(server.port)).toEqual({ status: 200, body: { status: 'ready', checks: { db: 'up' } } });
    expect((await fetchRaw(server.port, '/db/now')).body).toBe('{"one":1}');
  });

  it('reports the database down on /readyz, keeps /healthz 200, answers the API 503 with Retry-After, and recovers', async () => {
    const proxy = await startDbProxy();
    const server = await startFixture({ DATABASE_URL: proxy.url(), DB_CONNECT_TIMEOUT_MS: '1000' });
    expect((await readyz(server.port)).status).toBe(200);

    proxy.cut();
    const down = await readyz(server.port);
    expect(down.status).toBe(503);
    expect(down.body.checks.db).toMatch(/^down/);
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    const api = await fetchRaw(server.port, '/db/now');
    expect(api.status).toBe(503);
    expect(api.headers['retry-after']).toBe('2');
    expect(JSON.parse(api.body)).toMatchObject({ code: 'database_unavailable' });
    expect(server.proc.exitCode).toBeNull();

    proxy.restore();
    let recovered = await readyz(server.port);
    for (let i = 0; i < 50 && recovered.status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      recovered = await readyz(server.port);
    }
    expect(recovered.status).toBe(200);
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
  });

  it('cancels the query on the server when the client goes away', async () => {
    const admin = adminSql();
    const server = await startFixture({ DATABASE_URL: testDatabaseUrl() });
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
      DATABASE_URL: testDatabaseUrl(),
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
    const server = await startFixture({ DATABASE_URL: testDatabaseUrl(), GRACEFUL_TIMEOUT_MS: '500' });
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

  it('closes the pool after the drain and exits 0', async () => {
    const server = await startFixture({ DATABASE_URL: testDatabaseUrl() });
    await fetchRaw(server.port, '/db/now');
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});

describe('migrate command', () => {
  it('applies the migrations with `node dist/server.js migrate` semantics and exits 0, twice', async () => {
    const schema = await freshSchema();
    for (const expected of [1, 0]) {
      const { proc, exited } = spawnProgram('.cache/test/server.mjs', { DATABASE_URL: urlWithSchema(schema) }, [
        'migrate',
      ]);
      let out = '';
      proc.stdout?.on('data', (chunk) => {
        out += chunk;
      });
      expect((await exited).code).toBe(0);
      expect(out).toContain(`"applied":${expected}`);
    }
    const admin = adminSql();
    expect(await admin.unsafe(`select count(*)::int as n from ${schema}.runway_migrations`)).toEqual([{ n: 1 }]);
  });

  it('fails with a clear error without DATABASE_URL', async () => {
    const { proc, exited } = spawnProgram('.cache/test/server.mjs', {}, ['migrate']);
    let out = '';
    proc.stdout?.on('data', (chunk) => {
      out += chunk;
    });
    expect((await exited).code).toBe(1);
    expect(out).toContain('DATABASE_URL is required to migrate');
  });
});
