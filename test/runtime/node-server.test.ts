import { execFileSync } from 'node:child_process';
import { Agent } from 'node:http';
import { describe, expect, it, vi } from 'vitest';
import { NODE24 } from '../../scripts/node24.js';
import { fetchRaw, fixtureProgram, rawConnect, startFixture } from '../helpers.js';

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
    // The server timed it out and answered: a 408 on the access line, not a client that left.
    const line = await server.waitForLog((l) => l.message === 'request');
    expect(line).toMatchObject({ severity: 'WARNING', outcome: 'RequestTimeoutError', httpRequest: { status: 408 } });
  });

  it('keeps READ_TIMEOUT_MS during the drain: a body still trickling gets its 408 and the exit is 0', async () => {
    const server = await startFixture({ READ_HEADER_TIMEOUT_MS: '500', READ_TIMEOUT_MS: '1000' });
    const conn = await rawConnect(server.port);
    conn.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
    const trickle = setInterval(() => conn.socket.write('a'), 100);
    server.proc.kill('SIGTERM');
    await conn.closed;
    clearInterval(trickle);
    expect(conn.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect((await server.exited).code).toBe(0);
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

  it('answers oversized headers with a 431 problem, with a request id of its own, logged with it', async () => {
    const server = await startFixture({ LOG_LEVEL: 'debug' });
    const conn = await rawConnect(server.port);
    conn.socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 431 /);
    const body = conn.received().split('\r\n\r\n')[1] ?? '';
    expect(JSON.parse(body)).toMatchObject({ status: 431, title: 'Request Header Fields Too Large' });
    expect(conn.received()).toContain('x-content-type-options: nosniff');
    const id = /\r\nX-Request-Id: ([0-9a-f-]{36})\r\n/.exec(conn.received())?.[1];
    expect(id).toBeDefined();
    expect(JSON.parse(body).requestId).toBe(id);
    const line = await server.waitForLog((entry) => entry.message === 'client error');
    expect(line).toMatchObject({ status: 431, requestId: id });
  });

  it('lets a client still sending a header block past the limit read its 431 (a lingering close, not a reset)', async () => {
    const server = await startFixture();
    // 4 MB of headers in one write: the 431 goes out while most of it is still on its way.
    const head = `GET / HTTP/1.1\r\nHost: x\r\n${`X-Big: ${'a'.repeat(8_000)}\r\n`.repeat(500)}\r\n`;
    const answers = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const conn = await rawConnect(server.port);
        conn.socket.write(head);
        await conn.closed;
        return /^HTTP\/1\.1 (\d+) /.exec(conn.received())?.[1] ?? 'reset before any answer';
      }),
    );
    expect(answers).toEqual(Array(10).fill('431'));
  });

  it('answers a request whose chunked body is garbled with a 400 problem through its own response, with its id', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write(
      'POST /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: bad-chunk\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n',
    );
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 400 /);
    expect(conn.received()).toMatch(/\r\nx-request-id: bad-chunk\r\n/i);
    expect(JSON.parse(conn.received().split('\r\n\r\n')[1] ?? '')).toMatchObject({
      status: 400,
      requestId: 'bad-chunk',
    });
    const line = await server.waitForLog((entry) => entry.message === 'request' && entry.requestId === 'bad-chunk');
    expect(line).toMatchObject({ outcome: 'MalformedRequestError', httpRequest: { status: 400 } });
  });

  it('answers a request whose trailers are too large with a 431 problem', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write(
      'POST /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: big-trailer\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `5\r\nhello\r\n0\r\nX-T: ${'b'.repeat(20_000)}\r\n\r\n`,
    );
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 431 /);
    expect(conn.received()).toMatch(/\r\nx-request-id: big-trailer\r\n/i);
  });

  it('answers a pipelined request before closing on the garbled body of the one behind it', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write(
      'GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\nX-Request-Id: first-ok\r\n\r\n' +
        'POST /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: second-bad\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n',
    );
    await conn.closed;
    // Bodies have no line end: a status line follows the body before it directly.
    const heads = conn.received().match(/HTTP\/1\.1 \d+ [^\r]*/g);
    expect(heads).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 400 Bad Request']);
    expect(conn.received()).toMatch(/X-Request-Id: first-ok[\s\S]*done[\s\S]*X-Request-Id: second-bad/i);
  });

  it('closes once after a stream when a broken request behind it is read again and again (no listener per read)', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write('GET /events?everyMs=50 HTTP/1.1\r\nHost: x\r\n\r\n');
    await vi.waitFor(() => expect(conn.received()).toContain('data: '), { timeout: 10_000 });
    // node:http reports the parse error again on each read of the socket: 40 reads, paced so that each is its own.
    for (let i = 0; i < 40; i++) {
      await new Promise<void>((resolve) => conn.socket.write('X\r\n', () => setTimeout(resolve, 5)));
    }
    conn.socket.destroy();
    await server.waitForLog((entry) => entry.message === 'stream ended');
    expect(server.stderr()).not.toContain('MaxListenersExceededWarning');
  });

  it('answers a malformed request line with a 400 problem and a request id', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write('NOT HTTP AT ALL\r\n\r\n');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 400 /);
    expect(conn.received()).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}\r\n/);
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
    const server = await startFixture({}, 'listening', { program: fixtureProgram('slow-load') });
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
    const server = await startFixture({ READINESS_TIMEOUT_MS: '200' }, 'started', {
      program: fixtureProgram('ready-hang'),
    });
    const ready = await fetchRaw(server.port, '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({
      status: 'unavailable',
      checks: { event_loop: 'up', fixture: 'down: timed out after 200 ms' },
    });
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
  });

  it('turns readiness 503 when a check fails and 200 when it passes', async () => {
    const failing = await startFixture({}, 'started', { program: fixtureProgram('ready-fail') });
    expect(JSON.parse((await fetchRaw(failing.port, '/readyz')).body)).toEqual({
      status: 'unavailable',
      checks: { event_loop: 'up', fixture: 'down' },
    });
    const passing = await startFixture({}, 'started', { program: fixtureProgram('ready-pass') });
    expect(JSON.parse((await fetchRaw(passing.port, '/readyz')).body)).toEqual({
      status: 'ready',
      checks: { event_loop: 'up', fixture: 'up' },
    });
  });
});

describe('pipelined requests', () => {
  const pipelined = (count: number, path: string) =>
    Array.from({ length: count }, () => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');

  it('frees the in-flight slots of pipelined requests whose client left, and logs each once', async () => {
    const server = await startFixture({ MAX_INFLIGHT_REQUESTS: '30' });
    // 10 clients pipeline 3 requests each and leave at once: the answers queued behind the first have no socket.
    const clients = await Promise.all(Array.from({ length: 10 }, () => rawConnect(server.port)));
    for (const client of clients) {
      client.socket.write(pipelined(3, '/slow?ms=100'));
      client.socket.destroy();
    }
    const count = (message: string) => server.logs.filter((line) => line.message === message).length;
    // The first of each runs; the two pipelined behind it never do (their client left first), and
    // each of the 30 gets its one access line.
    await server.waitForLog(() => count('request') === 30, 'an access line for every request');
    expect(count('slow request started')).toBeLessThanOrEqual(10);
    const gone = server.logs.filter((line) => line.message === 'request');
    expect(new Set(gone.map((line) => line.outcome))).toEqual(new Set(['ClientGoneError']));
    // Every slot is free again: the cap's worth of concurrent requests all run.
    const replies = await Promise.all(Array.from({ length: 30 }, () => fetchRaw(server.port, '/slow?ms=50')));
    expect(replies.map((reply) => reply.status)).toEqual(Array(30).fill(200));
  });

  it('answers every pipelined request whose headers arrived before SIGTERM, then closes the socket', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write(pipelined(1, '/slow?ms=500') + pipelined(2, '/'));
    await server.waitForLog((line) => line.message === 'slow request started');
    server.proc.kill('SIGTERM');
    await conn.closed;
    const answers = conn.received().split(/(?=HTTP\/1\.1 )/);
    expect(answers.map((answer) => answer.slice(0, 12))).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
    // Connection: close on the last only: on an earlier one Node would drop the answers queued behind it.
    expect(answers.map((answer) => /\r\nconnection: close\r\n/i.test(answer))).toEqual([false, false, true]);
    expect((await server.exited).code).toBe(0);
  });
});

describe('answers still being written when the drain starts', () => {
  it('finishes writing a large answer to a slow reader when SIGTERM comes, then exits 0', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.pause();
    conn.socket.write('GET /big?mb=32 HTTP/1.1\r\nHost: x\r\n\r\n');
    await server.waitForLog((line) => line.message === 'big answer ready');
    // The answer is ended, most of it still queued in the server: http.Server#close() would cut it here.
    server.proc.kill('SIGTERM');
    await server.waitForLog((line) => line.message === 'shutdown started');
    let bytes = 0;
    conn.socket.setEncoding('latin1');
    conn.socket.on('data', (chunk: string) => {
      bytes += chunk.length;
    });
    conn.socket.resume();
    await conn.closed;
    expect(bytes + conn.received().length).toBeGreaterThan(32 * 1024 * 1024);
    expect((await server.exited).code).toBe(0);
  });
});

describe('what the drain relies on in node:http', () => {
  it('still exposes the list of connections whose request is arriving, on Node 20 and 24', async () => {
    const check =
      "const s=require('node:http').createServer();s.listen(0,()=>{" +
      "const k=Object.getOwnPropertySymbols(s).find((x)=>x.description==='http.server.connections');" +
      'console.log(typeof s[k]?.active);s.close()})';
    for (const node of [process.execPath, NODE24]) {
      expect(execFileSync(node, ['-e', check], { encoding: 'utf8' }).trim(), node).toBe('function');
    }
  });
});

describe('requests node:http would answer itself', () => {
  async function raw(port: number, request: string) {
    const conn = await rawConnect(port);
    conn.socket.write(request);
    await new Promise<void>((resolve) => conn.socket.once('data', () => resolve()));
    conn.socket.destroy();
    return conn.received();
  }

  it('answers a missing Host, an unknown Expect and a * target with problems, security headers and an access line', async () => {
    const server = await startFixture();
    const missingHost = await raw(server.port, 'GET / HTTP/1.1\r\n\r\n');
    expect(missingHost).toMatch(/^HTTP\/1\.1 400 /);
    expect(missingHost).toContain('application/problem+json');
    expect(missingHost).toContain('x-content-type-options: nosniff');
    const expectation = await raw(
      server.port,
      'POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n',
    );
    expect(expectation).toMatch(/^HTTP\/1\.1 417 /);
    expect(expectation).toContain('"code":"expectation_failed"');
    expect(await raw(server.port, 'GET * HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 400 [\s\S]*application\/problem\+json/,
    );
    const options = await raw(server.port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(options).toMatch(/^HTTP\/1\.1 204 [\s\S]*allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS/);
    await server.waitForLog(
      () => server.logs.filter((line) => line.message === 'request').length === 4,
      'four access lines',
    );
  });
});

describe('what the second review broke', () => {
  const lines = (server: { logs: { message: string }[] }, message: string) =>
    server.logs.filter((line) => line.message === message).length;

  it('gives back the body budget of an upload whose client left while the app loaded', async () => {
    const server = await startFixture({ MAX_BUFFERED_BODY_BYTES: String(2 * 1024 * 1024) }, 'listening', {
      program: fixtureProgram('slow-load'),
    });
    for (let i = 0; i < 2; i++) {
      const conn = await rawConnect(server.port);
      conn.socket.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${1024 * 1024}\r\n\r\nabc`);
      conn.socket.destroy();
    }
    await server.waitForLog((line) => line.message === 'started');
    expect((await fetchRaw(server.port, '/echo', { method: 'POST', body: 'four' })).body).toBe('{"bytes":4}');
  });

  it.each([
    [
      'a chunked body over the limit',
      `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n${'a'.repeat(64)}\r\n0\r\n\r\n`,
    ],
    ['an unknown Expect', 'POST /echo HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Length: 2\r\n\r\nab'],
    ['no Host', 'POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nab'],
  ])('runs a request pipelined behind a refusal for %s only if it can be answered', async (_, refused) => {
    const server = await startFixture({ BODY_LIMIT_BYTES: '16' });
    const conn = await rawConnect(server.port);
    // It asks to close after itself, so the connection ends either way and everything sent has arrived.
    conn.socket.write(`${refused}GET /slow?ms=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await conn.closed;
    await server.waitForLog((line) => line.message === 'request', "the refusal's access line");
    const ran = lines(server, 'slow request started') > 0;
    if (ran)
      await server.waitForLog(
        (line) =>
          line.message === 'request' &&
          line.outcome === undefined &&
          (line.httpRequest as { requestUrl: string }).requestUrl.startsWith('/slow'),
      );
    // Either the refusal kept the connection (the parser was past its body) and the request behind
    // ran and was answered, or the refusal closed it and the request behind never ran: never one
    // that ran with its answer dropped, which a client would retry into a second write.
    expect({ ran, answered: conn.received().endsWith('done') }).toEqual({ ran, answered: ran });
  });

  it('never writes a later request’s failure as the answer to an earlier one still running', async () => {
    const server = await startFixture({ READ_HEADER_TIMEOUT_MS: '300', READ_TIMEOUT_MS: '1000' });
    const conn = await rawConnect(server.port);
    // A runs for 800 ms; B's headers never complete and time out meanwhile.
    conn.socket.write('GET /slow?ms=800 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 200 [\s\S]*done$/);
  });

  it('closes a connection that has sent nothing at once when the drain starts', async () => {
    const server = await startFixture({
      READ_HEADER_TIMEOUT_MS: '10000',
      READ_TIMEOUT_MS: '15000',
      GRACEFUL_TIMEOUT_MS: '8000',
    });
    const conn = await rawConnect(server.port);
    const startedAt = performance.now();
    server.proc.kill('SIGTERM');
    await conn.closed;
    expect(conn.received()).toBe('');
    expect((await server.exited).code).toBe(0);
    // Generous: it is READ_HEADER_TIMEOUT_MS (10 s) if the connection is taken for one whose request is arriving.
    expect(performance.now() - startedAt).toBeLessThan(5_000);
  });

  it('tells a client that keeps pipelining during the drain to stop, and exits 0', async () => {
    const server = await startFixture({ GRACEFUL_TIMEOUT_MS: '4000' });
    const conn = await rawConnect(server.port);
    const request = 'GET /slow?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n';
    conn.socket.write(request + request);
    // Each answer makes it send two more: it never runs out of requests on its own.
    conn.socket.on('data', () => {
      if (!conn.socket.destroyed) conn.socket.write(request + request);
    });
    await server.waitForLog((line) => line.message === 'slow request started');
    server.proc.kill('SIGTERM');
    await conn.closed;
    expect(conn.received()).toMatch(/\r\nconnection: close\r\n/i);
    expect((await server.exited).code).toBe(0);
  });

  it('writes the access line of a request cut at the drain deadline before the exit', async () => {
    const server = await startFixture({ GRACEFUL_TIMEOUT_MS: '300' });
    // /slow ignores its signal: only the deadline ends it.
    const cut = fetchRaw(server.port, '/slow?ms=10000').catch(() => undefined);
    await server.waitForLog((line) => line.message === 'slow request started');
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(1);
    await cut;
    expect(server.logs.find((line) => line.message === 'request')).toMatchObject({ outcome: 'DrainTimeoutError' });
  });

  it('does not invite a body with 100 Continue that it then refuses', async () => {
    const server = await startFixture({ MAX_INFLIGHT_REQUESTS: '1' });
    const busy = fetchRaw(server.port, '/slow?ms=800');
    await server.waitForLog((line) => line.message === 'slow request started');
    const conn = await rawConnect(server.port);
    conn.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 503 /);
    await busy;
  });

  it('answers a Host that is malformed, or given twice, with a 400 problem', async () => {
    const server = await startFixture();
    for (const hostLines of [
      'Host: a b\r\n',
      'Host: x/y\r\n',
      'Host: x@y\r\n',
      'Host: \r\n',
      'Host: a\r\nHost: b\r\n',
    ]) {
      const conn = await rawConnect(server.port);
      conn.socket.write(`GET / HTTP/1.1\r\n${hostLines}\r\n`);
      await new Promise<void>((resolve) => conn.socket.once('data', () => resolve()));
      conn.socket.destroy();
      expect(conn.received(), hostLines).toMatch(/^HTTP\/1\.1 400 [\s\S]*application\/problem\+json/);
    }
    expect((await fetchRaw(server.port, '/', { headers: { host: '[::1]:8080' } })).status).toBe(200);
  });
});
