import { connect, createServer, type Server, type Socket } from 'node:net';
import postgres from 'postgres';
import { describe, expect, it, onTestFinished } from 'vitest';
import { freshDatabase } from '../db-helpers.js';
import { fetchRaw, spawnProgram, startFixture } from '../helpers.js';

/**
 * A TCP proxy in front of the real Postgres, so a test can cut the database
 * off (and bring it back) without touching the shared server.
 */
async function startDbProxy(databaseUrl: string) {
  const target = new URL(databaseUrl);
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
    url() {
      const url = new URL(databaseUrl);
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
    const server = await startFixture({ DATABASE_URL: await freshDatabase() });
    expect(await readyz(server.port)).toEqual({
      status: 200,
      body: { status: 'ready', checks: { event_loop: 'up', db: 'up' } },
    });
    expect((await fetchRaw(server.port, '/db/now')).body).toBe('{"one":1}');
  });

  it('reports the database down on /readyz, keeps /healthz 200, answers the API 503 with Retry-After, and recovers', async () => {
    const proxy = await startDbProxy(await freshDatabase());
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

  it('closes the pool after the drain and exits 0', async () => {
    const server = await startFixture({ DATABASE_URL: await freshDatabase() });
    await fetchRaw(server.port, '/db/now');
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});

describe('migrate command', () => {
  it('applies the migrations with `node dist/server.js migrate` semantics and exits 0, twice', async () => {
    const databaseUrl = await freshDatabase();
    for (const expected of [1, 0]) {
      const { proc, exited } = spawnProgram('.cache/test/server.mjs', { DATABASE_URL: databaseUrl }, ['migrate']);
      let out = '';
      proc.stdout?.on('data', (chunk) => {
        out += chunk;
      });
      expect((await exited).code).toBe(0);
      expect(out).toContain(`"applied":${expected}`);
    }
    const db = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    expect(await db`select count(*)::int as n from runway_migrations`).toEqual([{ n: 1 }]);
    await db.end({ timeout: 1 });
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
