import { Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import { fetchRaw, rawConnect, startFixture } from '../helpers.js';

// Timeouts are set short here so the cuts happen quickly; the assertions on
// elapsed time are generous upper bounds that Node's default 30 s sweep
// would still fail.

describe('connection timeouts on a real socket', () => {
  it('cuts a client that trickles its headers at the header timeout with a 408 problem', async () => {
    const server = await startFixture({ READ_HEADER_TIMEOUT_MS: '600', READ_TIMEOUT_MS: '10000' });
    const conn = await rawConnect(server.port);
    const started = performance.now();
    conn.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => conn.socket.write('X-Slow: 1\r\n'), 100);
    await conn.closed;
    clearInterval(trickle);
    const elapsed = performance.now() - started;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(conn.received()).toContain('application/problem+json');
    expect(elapsed).toBeGreaterThanOrEqual(550);
    expect(elapsed).toBeLessThan(3_000);
  });

  it('cuts a client that sends nothing at all after connecting', async () => {
    const server = await startFixture({ READ_HEADER_TIMEOUT_MS: '600' });
    const conn = await rawConnect(server.port);
    const started = performance.now();
    await conn.closed;
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('cuts a slow request body at the request timeout', async () => {
    const server = await startFixture({ READ_HEADER_TIMEOUT_MS: '500', READ_TIMEOUT_MS: '1000' });
    const conn = await rawConnect(server.port);
    const started = performance.now();
    conn.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
    const trickle = setInterval(() => conn.socket.write('a'), 100);
    await conn.closed;
    clearInterval(trickle);
    const elapsed = performance.now() - started;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(4_000);
  });

  it('destroys the socket of a client that never reads a large response, at the write timeout', async () => {
    const server = await startFixture({ WRITE_TIMEOUT_MS: '1000', HANDLER_TIMEOUT_MS: '500' });
    const conn = await rawConnect(server.port);
    conn.socket.pause();
    conn.socket.write('GET /big?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n');
    await server.waitForLog((line) => line.message === 'write timeout, closing connection');
    conn.socket.resume();
    await conn.closed;
    // Whatever sat in the kernel buffers arrived; the rest of the 64 MiB never did.
    expect(conn.received().length).toBeLessThan(64 * 1024 * 1024);
  });

  it('closes an idle keep-alive connection after the idle timeout', async () => {
    const server = await startFixture({ IDLE_TIMEOUT_MS: '500' });
    const conn = await rawConnect(server.port);
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const started = performance.now();
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(conn.received()).toContain('Keep-Alive: timeout=');
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('answers oversized headers with a 431 problem', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 431 /);
    const body = conn.received().split('\r\n\r\n')[1] ?? '';
    expect(JSON.parse(body)).toMatchObject({ status: 431, title: 'Request Header Fields Too Large' });
    expect(conn.received()).toContain('x-content-type-options: nosniff');
  });

  it('answers a malformed request line with a 400 problem', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write('NOT HTTP AT ALL\r\n\r\n');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 400 /);
  });
});

describe('health endpoints', () => {
  it('answers /healthz and /readyz with 200 once started, on GET and HEAD', async () => {
    const server = await startFixture();
    const agent = new Agent({ keepAlive: true });
    const live = await fetchRaw(server.port, '/healthz', { agent });
    expect(live.status).toBe(200);
    expect(JSON.parse(live.body)).toEqual({ status: 'ok' });
    const ready = await fetchRaw(server.port, '/readyz', { agent });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', checks: { event_loop: 'up' } });
    const head = await fetchRaw(server.port, '/readyz', { method: 'HEAD', agent });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    agent.destroy();
  });

  it('reports not ready until the app has loaded, while liveness already answers', async () => {
    const server = await startFixture({ FIXTURE_LOAD_DELAY_MS: '1500' }, 'listening');
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    const ready = await fetchRaw(server.port, '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'unavailable', checks: { startup: 'pending' } });
    // An app request sent now waits for the app rather than failing.
    const reply = await fetchRaw(server.port, '/');
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('hello');
  });

  it('turns readiness 503 when a check outlives its timeout, naming the check', async () => {
    const server = await startFixture({ FIXTURE_READY_CHECK: 'hang', READINESS_TIMEOUT_MS: '200' });
    const ready = await fetchRaw(server.port, '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({
      status: 'unavailable',
      checks: { event_loop: 'up', fixture: 'down: timed out after 200 ms' },
    });
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
  });

  it('turns readiness 503 when a check fails and 200 when it passes', async () => {
    const failing = await startFixture({ FIXTURE_READY_CHECK: 'fail' });
    expect(JSON.parse((await fetchRaw(failing.port, '/readyz')).body)).toEqual({
      status: 'unavailable',
      checks: { event_loop: 'up', fixture: 'down' },
    });
    const passing = await startFixture({ FIXTURE_READY_CHECK: 'pass' });
    expect(JSON.parse((await fetchRaw(passing.port, '/readyz')).body)).toEqual({
      status: 'ready',
      checks: { event_loop: 'up', fixture: 'up' },
    });
  });
});
