import { sign } from 'hono/jwt';
import { describe, expect, it } from 'vitest';
import { type Runtime, runtime } from '../../scripts/runtimes.js';
import { freshDatabase } from '../db-helpers.js';
import { FIXTURE, fetchRaw, type Reply, rawConnect, spawnProgram, startFixture } from '../helpers.js';

// One contract, run against a child process on each runtime: the same
// bundle (the fixture app, or dist/server.js for the notes API) started with
// `node`, `bun` and `deno run --allow-net --allow-env`.

const KEY = 'c'.repeat(48);

describe.each(['node', 'bun', 'deno'] as const)('runtime contract on %s', (name) => {
  const on: Runtime = runtime(name);
  const start = (env: Record<string, string> = {}, waitFor = 'started') => startFixture(env, waitFor, { runtime: on });

  it('serves liveness and readiness, and logs which runtime it is on', async () => {
    const server = await start();
    const live = await fetchRaw(server.port, '/healthz');
    expect(live.status).toBe(200);
    expect(JSON.parse(live.body)).toEqual({ status: 'ok' });
    expect(live.headers['x-content-type-options']).toBe('nosniff');
    const ready = await fetchRaw(server.port, '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', checks: { event_loop: 'up' } });
    const listening = await server.waitForLog((line) => line.message === 'listening');
    expect(listening.runtime).toBe(name);
    const reply = await fetchRaw(server.port, '/', { headers: { 'x-request-id': 'contract-1' } });
    expect(reply.body).toBe('hello');
    expect(reply.headers['x-request-id']).toBe('contract-1');
    expect(reply.headers['strict-transport-security']).toContain('max-age=');
  });

  it('turns readiness 503 during the shutdown delay while liveness stays 200, then exits 0', async () => {
    const server = await start({ SHUTDOWN_DELAY_MS: '1500' });
    server.proc.kill('SIGTERM');
    await server.waitForLog((line) => line.message === 'shutdown started');
    const ready = await fetchRaw(server.port, '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body).checks).toMatchObject({ shutdown: 'draining' });
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    // Still serving the app during the delay: the load balancer may not have noticed yet.
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });

  it('completes a request in flight across SIGTERM and exits 0 after the drain', async () => {
    const server = await start();
    const slow = fetchRaw(server.port, '/slow?ms=1000');
    await server.waitForLog((line) => line.message === 'slow request started');
    server.proc.kill('SIGTERM');
    const reply = await slow;
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('done');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    const complete = await server.waitForLog((line) => line.message === 'shutdown complete');
    expect(complete.exitCode).toBe(0);
  });

  it('ends the drain of a client that stalled its upload at its deadline, with no fatal error', async () => {
    const server = await start({ GRACEFUL_TIMEOUT_MS: '1000' });
    const upload = await rawConnect(server.port);
    upload.socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n${'a'.repeat(1000)}`);
    // A request sent after it and seen by the app: the stalled upload has arrived by then.
    const slow = fetchRaw(server.port, '/slow?ms=10');
    await server.waitForLog((line) => line.message === 'slow request started');
    await slow;
    server.proc.kill('SIGTERM');
    const { code } = await server.exited;
    // node reads the body until the deadline (exit 1); Deno's shutdown() ends it at once (499), and its
    // connection then held the drain: exit 1 too. Never a crash from inside the runtime at the deadline.
    expect(code).toBe(1);
    expect(server.logs.filter((line) => line.message === 'fatal error')).toEqual([]);
    expect(server.logs.find((line) => line.message === 'shutdown complete')).toMatchObject({ exitCode: 1 });
  });

  it('honours the drain deadline with a hung request: aborts it and exits 1 within the budget', async () => {
    const server = await start({ GRACEFUL_TIMEOUT_MS: '500' });
    const hung = fetchRaw(server.port, '/hang').catch((error: Error) => error);
    await server.waitForLog((line) => line.message === 'hang request started');
    const startedAt = performance.now();
    server.proc.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 1, signal: null });
    expect(performance.now() - startedAt).toBeLessThan(5_000);
    await server.waitForLog((line) => line.message === 'hang request aborted');
    await hung;
  });

  it('ends an event stream at the drain with a retry hint and a proper end, and exits 0 with no ERROR line', async () => {
    const server = await start({ SHUTDOWN_DELAY_MS: '0' });
    const stream = await rawConnect(server.port);
    stream.socket.write('GET /events?everyMs=50 HTTP/1.1\r\nHost: x\r\n\r\n');
    await server.waitForLog((line) => line.message === 'stream started');
    server.proc.kill('SIGTERM');
    await stream.closed;
    expect(stream.received()).toMatch(/retry: 500\n\n\r\n0\r\n\r\n$/);
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });

  it('waits for a stream that ignores the drain, aborts it at the deadline and counts it', async () => {
    const server = await start({ SHUTDOWN_DELAY_MS: '0', GRACEFUL_TIMEOUT_MS: '500' });
    const stream = await rawConnect(server.port);
    stream.socket.write('GET /raw-stream HTTP/1.1\r\nHost: x\r\n\r\n');
    await server.waitForLog((line) => line.message === 'raw stream started');
    server.proc.kill('SIGTERM');
    const forced = await server.waitForLog(
      (line) => line.message === 'drain deadline reached, closed in-flight requests',
    );
    expect(forced).toMatchObject({ inFlight: 1, streams: 1 });
    expect(await server.exited).toEqual({ code: 1, signal: null });
  });

  it('answers 503 handler_timeout at the handler deadline and aborts the request signal', async () => {
    const server = await start({ HANDLER_TIMEOUT_MS: '300' });
    const reply = await fetchRaw(server.port, '/hang');
    expect(reply.status).toBe(503);
    expect(JSON.parse(reply.body).code).toBe('handler_timeout');
    const aborted = await server.waitForLog((line) => line.message === 'hang request aborted');
    expect(aborted.reason).toBe('HandlerTimeoutError');
  });

  it('refuses a body over the limit with 413, declared or chunked, and serves one within it', async () => {
    const server = await start({ BODY_LIMIT_BYTES: '1024' });
    const declared = await rawConnect(server.port);
    declared.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n');
    await new Promise<void>((resolve) => {
      const check = () => (declared.received().includes('\r\n\r\n') ? resolve() : setTimeout(check, 10));
      check();
    });
    expect(declared.received()).toMatch(/^HTTP\/1\.1 413 /);
    const chunked = await fetchRaw(server.port, '/echo', {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body: 'x'.repeat(4096),
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).code).toBe('body_too_large');
    const within = await fetchRaw(server.port, '/echo', { method: 'POST', body: 'y'.repeat(1000) });
    expect(JSON.parse(within.body)).toEqual({ bytes: 1000 });
  });

  it('sheds past MAX_INFLIGHT_REQUESTS with 503 and rate-limits a client with 429 and the RateLimit fields', async () => {
    const server = await start({ MAX_INFLIGHT_REQUESTS: '1', RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '3' });
    const slow = fetchRaw(server.port, '/slow?ms=1000');
    await server.waitForLog((line) => line.message === 'slow request started');
    const shed = await fetchRaw(server.port, '/');
    expect(shed.status).toBe(503);
    expect(shed.headers['retry-after']).toBe('1');
    expect(JSON.parse(shed.body).code).toBe('overloaded');
    expect((await slow).status).toBe(200);
    // A burst of 3 at 1 a second: within a few quick requests the bucket is empty.
    let limited: Reply | undefined;
    for (let i = 0; i < 5 && !limited; i++) {
      const reply = await fetchRaw(server.port, '/');
      if (reply.status === 429) limited = reply;
      else expect(reply.status).toBe(200);
    }
    if (!limited) throw new Error('never rate-limited');
    expect(JSON.parse(limited.body).code).toBe('rate_limited');
    expect(limited.headers['ratelimit-policy']).toBe('"per-client";q=3;w=3');
    expect(limited.headers.ratelimit).toMatch(/^"per-client";r=0;t=\d+$/);
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
  });

  it('fails fast on invalid config, naming the variable, before listening', async () => {
    const { proc, exited } = spawnProgram(FIXTURE, { PORT: 'eighty', READ_TIMEOUT_MS: '-1' }, [], on);
    let stderr = '';
    let stdout = '';
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    expect((await exited).code).toBe(1);
    expect(stderr).toContain('PORT: expected a whole number from 0 to 65535, got \\"eighty\\"');
    expect(stderr).toContain('READ_TIMEOUT_MS');
    expect(stdout).not.toContain('listening');
  });

  it('serves the notes API against Postgres', async () => {
    const url = await freshDatabase();
    const server = await startFixture(
      { DATABASE_URL: url, MIGRATE_ON_START: 'true', JWT_SIGNING_KEY: KEY, NODE_ENV: 'production' },
      'started',
      { runtime: on, program: 'dist/server.js' },
    );
    const now = Math.floor(Date.now() / 1000);
    const token = await sign({ sub: 'alice', exp: now + 600, iat: now }, KEY, 'HS256');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const created = await fetchRaw(server.port, '/v1/notes', {
      method: 'POST',
      headers,
      body: JSON.stringify({ title: `from ${name}` }),
    });
    expect(created.status).toBe(201);
    const { id } = JSON.parse(created.body) as { id: string };
    const read = await fetchRaw(server.port, `/v1/notes/${id}`, { headers });
    expect(read.status).toBe(200);
    expect(JSON.parse(read.body)).toMatchObject({ id, title: `from ${name}` });
    const listed = await fetchRaw(server.port, '/v1/notes?limit=1', { headers });
    expect(JSON.parse(listed.body).items).toHaveLength(1);
    const ready = await fetchRaw(server.port, '/readyz');
    expect(JSON.parse(ready.body).checks).toMatchObject({ db: 'up' });
    server.proc.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });
});

describe('bun on the TypeScript source', () => {
  it('runs `bun --conditions=runway-source service/main.ts`: serves, reports ready, drains on SIGTERM', async () => {
    // runway from its source, through package.json's exports, as the bundle is built.
    const [bun] = runtime('bun').command('');
    const onSource: Runtime = { name: 'bun', command: (file) => [bun, '--conditions=runway-source', file] };
    const server = await startFixture({}, 'started', { runtime: onSource, program: 'service/main.ts' });
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    expect((await fetchRaw(server.port, '/readyz')).status).toBe(200);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });
});
