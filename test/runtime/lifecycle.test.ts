import { Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import { canConnect, fetchRaw, rawConnect, startFixture } from '../helpers.js';

describe('drain on SIGTERM', () => {
  it('lets an in-flight request finish with Connection: close, then exits 0', async () => {
    const server = await startFixture();
    const inFlight = fetchRaw(server.port, '/slow?ms=800', { agent: new Agent({ keepAlive: true }) });
    await server.waitForLog((line) => line.message === 'slow request started');
    server.proc.kill('SIGTERM');
    const reply = await inFlight;
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('done');
    expect(reply.headers.connection).toBe('close');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    const complete = server.logs.find((line) => line.message === 'shutdown complete');
    expect(complete).toMatchObject({ exitCode: 0 });
  });

  it('closes idle keep-alive connections at once and refuses new connections', async () => {
    const server = await startFixture();
    const idle = await rawConnect(server.port);
    idle.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => idle.socket.once('data', () => resolve()));
    let signalled = false;
    let closedBeforeSignal = false;
    void idle.closed.then(() => {
      closedBeforeSignal = !signalled;
    });
    const slow = fetchRaw(server.port, '/slow?ms=1500');
    // A failed assertion below must not leave this promise to reject unhandled.
    slow.catch(() => {});
    await server.waitForLog((line) => line.message === 'slow request started');
    signalled = true;
    server.proc.kill('SIGTERM');
    await server.waitForLog((line) => line.message === 'shutdown started');
    // The idle socket goes while the slow request is still running.
    await idle.closed;
    expect(closedBeforeSignal, `the idle socket closed before SIGTERM; logs: ${JSON.stringify(server.logs)}`).toBe(
      false,
    );
    expect(server.proc.exitCode).toBeNull();
    expect(await canConnect(server.port)).toBe(false);
    expect((await slow).status).toBe(200);
    expect((await server.exited).code).toBe(0);
  });

  it('keeps serving with readiness 503 and liveness 200 during the shutdown delay', async () => {
    const server = await startFixture({ SHUTDOWN_DELAY_MS: '1500' });
    server.proc.kill('SIGTERM');
    await server.waitForLog((line) => line.message === 'shutdown started');
    const ready = await fetchRaw(server.port, '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'unavailable', checks: { shutdown: 'draining' } });
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    // New connections still work: the load balancer has not caught up yet.
    expect((await fetchRaw(server.port, '/')).body).toBe('hello');
    expect((await server.exited).code).toBe(0);
  });

  it('aborts a hung handler at the graceful deadline, closes it and exits 1', async () => {
    const server = await startFixture({ GRACEFUL_TIMEOUT_MS: '500' });
    const hung = fetchRaw(server.port, '/hang').then(
      (reply) => reply,
      (error: Error) => error,
    );
    await server.waitForLog((line) => line.message === 'hang request started');
    server.proc.kill('SIGTERM');
    const aborted = await server.waitForLog((line) => line.message === 'hang request aborted');
    expect(aborted.reason).toBe('DrainTimeoutError');
    expect((await server.exited).code).toBe(1);
    expect(
      server.logs.find((line) => line.message === 'drain deadline reached, closed in-flight requests'),
    ).toMatchObject({
      inFlight: 1,
    });
    await hung;
  });

  it('tells a handler through its signal that the client went away', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n');
    await server.waitForLog((line) => line.message === 'hang request started');
    conn.socket.destroy();
    const aborted = await server.waitForLog((line) => line.message === 'hang request aborted');
    expect(aborted.reason).toBe('ClientGoneError');
  });

  it('exits at once, non-zero, on a second signal during the drain', async () => {
    const server = await startFixture({ SHUTDOWN_DELAY_MS: '15000' });
    server.proc.kill('SIGTERM');
    await server.waitForLog((line) => line.message === 'shutdown started');
    server.proc.kill('SIGINT');
    expect((await server.exited).code).toBe(130);
  });

  it('runs cleanup hooks after the drain', async () => {
    const server = await startFixture({ FIXTURE_CLEANUP: 'ok' });
    server.proc.kill('SIGINT');
    expect((await server.exited).code).toBe(0);
    const messages = server.logs.map((line) => line.message);
    expect(messages.indexOf('fixture cleanup ran')).toBeGreaterThan(messages.indexOf('shutdown started'));
  });

  it('exits 1 when a cleanup hook fails', async () => {
    const server = await startFixture({ FIXTURE_CLEANUP: 'fail' });
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(1);
    expect(server.logs.find((line) => line.message === 'cleanup failed')).toMatchObject({ hook: 'fixture' });
  });

  it('bounds a cleanup hook that never returns and exits 1', async () => {
    const server = await startFixture({ FIXTURE_CLEANUP: 'hang', CLEANUP_TIMEOUT_MS: '300' });
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(1);
    expect(server.logs.find((line) => line.message === 'cleanup timed out')).toMatchObject({ cleanupTimeoutMs: 300 });
  });
});

describe('fatal errors', () => {
  it('logs an uncaught exception with its stack and drains with exit code 1', async () => {
    const server = await startFixture();
    expect((await fetchRaw(server.port, '/crash')).status).toBe(200);
    expect((await server.exited).code).toBe(1);
    const fatal = server.logs.find((line) => line.message === 'fatal error');
    expect(fatal).toMatchObject({ severity: 'ERROR', error: { message: 'boom from a timer' } });
    expect(String(fatal?.stack_trace)).toContain('boom from a timer');
    expect(server.logs.some((line) => line.message === 'shutdown complete')).toBe(true);
  });
});
