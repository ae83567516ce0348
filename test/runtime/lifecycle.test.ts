import { Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import { canConnect, fetchRaw, fixtureProgram, rawConnect, startFixture } from '../helpers.js';

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
    // And the request itself has its access line, with the outcome.
    expect(server.logs.find((line) => line.message === 'request')).toMatchObject({
      severity: 'WARNING',
      outcome: 'DrainTimeoutError',
    });
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
    const server = await startFixture({}, 'started', { program: fixtureProgram('cleanup-ok') });
    server.proc.kill('SIGINT');
    expect((await server.exited).code).toBe(0);
    const messages = server.logs.map((line) => line.message);
    expect(messages.indexOf('fixture cleanup ran')).toBeGreaterThan(messages.indexOf('shutdown started'));
  });

  it('exits 1 when a cleanup hook fails', async () => {
    const server = await startFixture({}, 'started', { program: fixtureProgram('cleanup-fail') });
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(1);
    expect(server.logs.find((line) => line.message === 'cleanup failed')).toMatchObject({ hook: 'fixture' });
  });

  it('bounds a cleanup hook that never returns and exits 1', async () => {
    const server = await startFixture({ CLEANUP_TIMEOUT_MS: '300' }, 'started', {
      program: fixtureProgram('cleanup-hang'),
    });
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(1);
    expect(server.logs.find((line) => line.message === 'cleanup timed out')).toMatchObject({ cleanupTimeoutMs: 300 });
  });
});

describe('requests still arriving when the drain starts', () => {
  // The listener is closed once a new connection is refused: the drain's stop-accepting step has run.
  async function listenerClosed(port: number) {
    for (let i = 0; i < 200 && (await canConnect(port)); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  }

  it.each([
    ['at SIGTERM', '0'],
    ['during the shutdown delay', '500'],
  ])(
    'answers a request whose headers were half received %s, with Connection: close, then exits 0',
    async (_, delay) => {
      const server = await startFixture({ SHUTDOWN_DELAY_MS: delay });
      const conn = await rawConnect(server.port);
      conn.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
      server.proc.kill('SIGTERM');
      await server.waitForLog((line) => line.message === 'shutdown started');
      await listenerClosed(server.port);
      conn.socket.write('\r\n');
      await conn.closed;
      expect(conn.received()).toMatch(/^HTTP\/1\.1 200 /);
      expect(conn.received()).toMatch(/\r\nconnection: close\r\n/i);
      expect(conn.received()).toMatch(/hello$/);
      expect((await server.exited).code).toBe(0);
    },
  );

  it('answers 408 to headers that never complete within READ_HEADER_TIMEOUT_MS, and still exits 0', async () => {
    const server = await startFixture({ READ_HEADER_TIMEOUT_MS: '400' });
    const conn = await rawConnect(server.port);
    conn.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    server.proc.kill('SIGTERM');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect((await server.exited).code).toBe(0);
  });
});

describe('the last log lines', () => {
  // About 2.5 MB of log lines: far more than the pipe and the reader's buffer hold.
  const LINES = 10_000;

  it('reach a log reader that is behind when the process exits', async () => {
    const server = await startFixture();
    const stdoutClosed = new Promise((resolve) => server.proc.stdout?.once('close', resolve));
    // Stop reading stdout: the pipe fills and the server's writes queue in memory.
    server.proc.stdout?.pause();
    expect((await fetchRaw(server.port, `/log?lines=${LINES}`)).body).toBe('logged');
    server.proc.kill('SIGTERM');
    // The fault itself: a reader that comes back 2 s after SIGTERM. What was queued must still arrive.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    server.proc.stdout?.resume();
    expect((await server.exited).code).toBe(0);
    await stdoutClosed;
    expect(server.logs.filter((line) => line.message === 'fixture log line')).toHaveLength(LINES);
    expect(server.logs.some((line) => line.message === 'shutdown started')).toBe(true);
    expect(server.logs.at(-1)).toMatchObject({ message: 'shutdown complete', exitCode: 0 });
  });

  it('exits before the termination grace ends when the log reader never reads', async () => {
    const server = await startFixture({ TERMINATION_GRACE_MS: '3000', GRACEFUL_TIMEOUT_MS: '1000' });
    server.proc.stdout?.pause();
    expect((await fetchRaw(server.port, `/log?lines=${LINES}`)).body).toBe('logged');
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
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

  it('logs an unhandled rejection with its stack and keeps serving', async () => {
    const server = await startFixture();
    expect((await fetchRaw(server.port, '/reject')).status).toBe(200);
    const logged = await server.waitForLog((line) => line.message === 'unhandled rejection');
    expect(logged).toMatchObject({ severity: 'ERROR', error: { message: 'rejected with nobody to catch it' } });
    expect(String(logged.stack_trace)).toContain('rejected with nobody to catch it');
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});
