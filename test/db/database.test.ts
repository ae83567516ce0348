import { connect, createServer, type Server, type Socket } from 'node:net';
import postgres from 'postgres';
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrations } from '../../service/migrations/index.js';
import { freshDatabase } from '../db-helpers.js';
import { fetchRaw, rawConnect, spawnProgram, startFixture } from '../helpers.js';

/**
 * Listens on a port below Linux's ephemeral range (32768-60999): one the kernel never hands out for
 * `listen(0)` or as a connection's source port, so while refuse() has it closed nothing else takes it
 * and restore() can listen on it again (an ephemeral port was taken once: EADDRINUSE in CI).
 */
async function listenBelowEphemeral(server: Server): Promise<number> {
  for (let tries = 0; ; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const listened = await new Promise<boolean>((resolve) => {
      const failed = () => resolve(false);
      server.once('error', failed);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', failed);
        resolve(true);
      });
    });
    if (listened) return port;
    if (tries > 50) throw new Error('no free port below the ephemeral range');
  }
}

/**
 * A TCP proxy in front of the real Postgres, so a test can cut the database
 * off (and bring it back) without touching the shared server.
 */
async function startDbProxy(databaseUrl: string) {
  const target = new URL(databaseUrl);
  const sockets = new Set<Socket>();
  let up = true;
  let refused = 0;
  const waiters = new Set<() => void>();
  const server: Server = createServer((client) => {
    if (!up) {
      refused++;
      for (const wake of waiters) wake();
      return client.destroy();
    }
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
  const port = await listenBelowEphemeral(server);
  onTestFinished(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
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
    /** Open connections stop forwarding (a partition); new ones are refused. */
    blackHole() {
      up = false;
      for (const socket of sockets) {
        socket.unpipe();
        socket.pause();
      }
    },
    refusedCount: () => refused,
    /** Resolves once `count` connections in all have been refused. */
    refusedAtLeast(count: number) {
      return new Promise<void>((resolve) => {
        const check = () => {
          if (refused < count) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      });
    },
    /** Stops listening: connects get ECONNREFUSED from the kernel, as from a server that is down. */
    refuse() {
      up = false;
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async restore() {
      up = true;
      if (!server.listening) await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
  };
}

async function readyz(port: number) {
  const reply = await fetchRaw(port, '/readyz');
  return { status: reply.status, body: JSON.parse(reply.body) };
}

/**
 * /readyz until it answers `status`. A readiness answer is reused for up to
 * READINESS_REUSE_MS (health.ts), and no event tells when the next round
 * runs: poll, bounded.
 */
async function readyzBecomes(port: number, status: number) {
  let reply = await readyz(port);
  for (let i = 0; i < 100 && reply.status !== status; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    reply = await readyz(port);
  }
  return reply;
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
    const down = await readyzBecomes(server.port, 503);
    expect(down.status).toBe(503);
    expect(down.body.checks.db).toMatch(/^down/);
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    const api = await fetchRaw(server.port, '/db/now');
    expect(api.status).toBe(503);
    expect(api.headers['retry-after']).toBe('2');
    expect(JSON.parse(api.body)).toMatchObject({ code: 'database_unavailable' });
    expect(server.proc.exitCode).toBeNull();

    await proxy.restore();
    expect((await readyzBecomes(server.port, 200)).status).toBe(200);
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
  });

  it('keeps answering 503 database_unavailable, not the handler deadline, through a long outage', async () => {
    const proxy = await startDbProxy(await freshDatabase());
    const server = await startFixture({
      DATABASE_URL: proxy.url(),
      DB_POOL_MAX: '1',
      HANDLER_TIMEOUT_MS: '4000',
      DB_STATEMENT_TIMEOUT_MS: '3000',
    });
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
    await proxy.refuse();
    // Each refused connect makes the driver wait longer before the next: its own curve
    // (3^n/100 s, up to 20 s) would hold the 8th query past the 4 s handler deadline;
    // runway caps the wait at 2 s (src/db/pool.ts).
    const codes: string[] = [];
    for (let i = 0; i < 9; i++) {
      codes.push((JSON.parse((await fetchRaw(server.port, '/db/now')).body) as { code: string }).code);
    }
    expect(codes).toEqual(Array(9).fill('database_unavailable'));
    await proxy.restore();
    for (let i = 0; i < 50 && (await fetchRaw(server.port, '/db/now')).status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
  }, 60_000);

  it('stays up when readiness times out on a black-holed database and the cancel cannot connect', async () => {
    const proxy = await startDbProxy(await freshDatabase());
    const server = await startFixture({ DATABASE_URL: proxy.url(), READINESS_TIMEOUT_MS: '500' });
    expect((await readyz(server.port)).status).toBe(200);

    proxy.blackHole();
    const down = await readyzBecomes(server.port, 503);
    expect(down).toEqual({
      status: 503,
      body: { status: 'unavailable', checks: { event_loop: 'up', db: 'down: timed out after 500 ms' } },
    });
    // The timed-out ping is cancelled over a new connection, which the proxy refuses.
    await proxy.refusedAtLeast(1);
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    expect(server.proc.exitCode).toBeNull();
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
    expect(server.logs.find((line) => line.message === 'readiness check failed')).toMatchObject({
      severity: 'WARNING',
      check: 'db',
      reason: 'timed out after 500 ms',
    });
  });

  it('stays up when a client leaves before its query is sent, and logs it once at INFO', async () => {
    const server = await startFixture({ DATABASE_URL: await freshDatabase() });
    for (let i = 0; i < 3; i++) {
      const conn = await rawConnect(server.port);
      conn.socket.write('GET /db/after-abort HTTP/1.1\r\nHost: x\r\n\r\n');
      await server.waitForLog(
        (line) =>
          line.message === 'db after-abort started' &&
          server.logs.filter((l) => l.message === 'db after-abort started').length > i,
      );
      conn.socket.destroy();
    }
    const gone = () => server.logs.filter((line) => line.message === 'request' && line.outcome === 'ClientGoneError');
    await server.waitForLog(() => gone().length === 3, 'three access lines');
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
    expect(server.proc.exitCode).toBeNull();
    expect(gone().map((line) => [line.severity, (line.httpRequest as { status: number }).status])).toEqual([
      ['INFO', 499],
      ['INFO', 499],
      ['INFO', 499],
    ]);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });

  it('waits for the database at start-up, answering probes and 503 not_started, then migrates and starts', async () => {
    const proxy = await startDbProxy(await freshDatabase());
    await proxy.refuse();
    const server = await startFixture(
      {
        DATABASE_URL: proxy.url(),
        MIGRATE_ON_START: 'true',
        HANDLER_TIMEOUT_MS: '1000',
        DB_STATEMENT_TIMEOUT_MS: '500',
      },
      'listening',
    );
    await server.waitForLog((line) => line.message === 'start-up migrations wait for the database');
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    expect(await readyz(server.port)).toEqual({
      status: 503,
      body: { status: 'unavailable', checks: { startup: 'pending' } },
    });
    const waiting = await fetchRaw(server.port, '/db/now');
    expect(waiting.status).toBe(503);
    expect(waiting.headers['retry-after']).toBe('1');
    expect(JSON.parse(waiting.body)).toMatchObject({ code: 'not_started' });
    await proxy.restore();
    await server.waitForLog((line) => line.message === 'started');
    expect((await readyzBecomes(server.port, 200)).status).toBe(200);
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });

  it('exits 0 on SIGTERM while the start-up still waits for the database', async () => {
    const proxy = await startDbProxy(await freshDatabase());
    await proxy.refuse();
    const server = await startFixture({ DATABASE_URL: proxy.url(), MIGRATE_ON_START: 'true' }, 'listening');
    await server.waitForLog((line) => line.message === 'start-up migrations wait for the database');
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    expect(server.logs.some((line) => line.message === 'app start abandoned: shutting down')).toBe(true);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });

  it('ends a pool whose connections no longer answer within the cleanup bound, and exits 0', async () => {
    const proxy = await startDbProxy(await freshDatabase());
    const server = await startFixture({ DATABASE_URL: proxy.url() });
    expect((await fetchRaw(server.port, '/db/now')).status).toBe(200);
    proxy.blackHole();
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
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
    for (const expected of [migrations.length, 0]) {
      const { proc, exited } = spawnProgram('.cache/test/server.mjs', { DATABASE_URL: databaseUrl }, ['migrate']);
      let out = '';
      proc.stdout?.on('data', (chunk) => {
        out += chunk;
      });
      expect((await exited).code).toBe(0);
      expect(out).toContain(`"applied":${expected}`);
    }
    const db = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    expect(await db`select count(*)::int as n from runway_migrations`).toEqual([{ n: migrations.length }]);
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
