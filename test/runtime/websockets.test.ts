import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { type Runtime, runtime } from '../../scripts/runtimes.js';
import { fetchRaw, type LogLine, startFixture } from '../helpers.js';
import { clientFrame, closeCodes, openSocket, rawSocket, refusedUpgrade } from '../websocket-client.js';

// WebSockets through the runtime's upgradeWebSocket (src/runtime/websocket.ts), on each runtime's
// own server: the same fixture bundle run by node, Bun and Deno, driven by a real client.

// ERROR lines other than access lines (a 5xx answer's access line is at ERROR by design).
const errors = (logs: LogLine[]) => logs.filter((line) => line.severity === 'ERROR' && line.message !== 'request');

describe.each(['node', 'node24', 'bun', 'deno'] as const)('WebSockets on %s', (name) => {
  const on: Runtime = runtime(name);
  const start = (env: Record<string, string> = {}) =>
    startFixture({ SHUTDOWN_DELAY_MS: '0', ...env }, 'started', { runtime: on });

  it('echoes messages; the 101 carries the request id and security headers, and has one access line', async () => {
    const server = await start();
    const client = await openSocket(server.port, '/socket/echo', { 'x-request-id': 'socket-1' });
    expect(client.headers['x-request-id']).toBe('socket-1');
    expect(client.headers['x-content-type-options']).toBe('nosniff');
    client.ws.send('hello');
    expect(await client.next()).toBe('echo:hello');
    client.ws.send(Buffer.from([1, 2, 3]));
    expect(await client.next((message) => message.startsWith('<binary'))).toBe('<binary 3>');
    const access = await server.waitForLog((line) => line.message === 'request' && line.requestId === 'socket-1');
    expect((access.httpRequest as { status: number }).status).toBe(101);
    client.ws.close(1000, 'done');
    expect((await client.closed).code).toBe(1000);
    expect((await server.waitForLog((line) => line.message === 'socket closed')).code).toBe(1000);
  });

  it('closes 1009 a message over WEBSOCKET_MAX_MESSAGE_BYTES, and serves on', async () => {
    const server = await start({ WEBSOCKET_MAX_MESSAGE_BYTES: '1000' });
    const client = await openSocket(server.port, '/socket/echo');
    client.ws.send('x'.repeat(1000));
    expect(await client.next()).toBe(`echo:${'x'.repeat(1000)}`);
    client.ws.send('x'.repeat(1001));
    expect((await client.closed).code).toBe(1009);
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    expect(errors(server.logs)).toEqual([]);
  });

  it('answers a bad handshake with a problem: 426, 400, 403, and a plain route asked to upgrade', async () => {
    const server = await start({ WEBSOCKET_ORIGINS: 'https://app.example.com' });
    const plain = await fetchRaw(server.port, '/socket/echo');
    expect(plain.status).toBe(426);
    expect(plain.headers.upgrade).toBe('websocket');
    expect(JSON.parse(plain.body).code).toBe('upgrade_required');
    const wrongKey = await fetchRaw(server.port, '/socket/echo', {
      headers: {
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'short',
      },
    });
    expect(wrongKey.status).toBe(400);
    expect(JSON.parse(wrongKey.body).code).toBe('bad_websocket_handshake');
    const version = await fetchRaw(server.port, '/socket/echo', {
      headers: {
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-version': '8',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    expect(version.status).toBe(426);
    expect(version.headers['sec-websocket-version']).toBe('13');
    const foreign = await refusedUpgrade(server.port, '/socket/echo', { origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(JSON.parse(foreign.body).code).toBe('origin_not_allowed');
    const listed = await openSocket(server.port, '/socket/echo', { origin: 'https://app.example.com' });
    listed.ws.close();
    const own = await openSocket(server.port, '/socket/echo', { origin: `http://127.0.0.1:${server.port}` });
    own.ws.close();
    const notASocket = await refusedUpgrade(server.port, '/');
    expect(notASocket.status).toBe(400);
    expect(JSON.parse(notASocket.body).code).toBe('not_a_websocket_route');
    // The app's own answer in front of the socket (its auth) passes as it is.
    const unauthorized = await refusedUpgrade(server.port, '/socket/private');
    expect(unauthorized.status).toBe(401);
    const authorized = await openSocket(server.port, '/socket/private', { authorization: 'Bearer let-me-in' });
    expect(await authorized.next()).toBe('welcome');
    authorized.ws.close();
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    expect(errors(server.logs)).toEqual([]);
  });

  it('counts the upgrade in the rate limit and the in-flight cap, and caps open sockets', async () => {
    const limited = await start({ RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '1' });
    const first = await openSocket(limited.port, '/socket/echo');
    expect(first.headers['ratelimit-policy']).toBeDefined();
    const second = await refusedUpgrade(limited.port, '/socket/echo');
    expect(second.status).toBe(429);
    first.ws.close();

    const capped = await start({ WEBSOCKET_MAX_CONNECTIONS: '1', MAX_INFLIGHT_REQUESTS: '1' });
    const open = await openSocket(capped.port, '/socket/echo');
    const full = await refusedUpgrade(capped.port, '/socket/echo');
    expect(full.status).toBe(503);
    expect(full.headers['retry-after']).toBe('1');
    expect(JSON.parse(full.body).code).toBe('overloaded');
    open.ws.close();
    await open.closed;
    await capped.waitForLog((line) => line.message === 'socket closed');
    // An open socket holds no in-flight slot; a handler that runs does.
    const again = await openSocket(capped.port, '/socket/echo');
    const hung = fetchRaw(capped.port, '/hang').catch(() => undefined);
    await capped.waitForLog((line) => line.message === 'hang request started');
    again.ws.close();
    await again.closed;
    await capped.waitForLog((line) => line.message === 'socket closed' && capped.logs.indexOf(line) > 0);
    const shed = await refusedUpgrade(capped.port, '/socket/echo');
    expect(shed.status).toBe(503);
    capped.proc.kill('SIGKILL');
    await hung;
  });

  it('keeps an idle socket that answers pings, and drops one that does not', async () => {
    const server = await start({ WEBSOCKET_IDLE_TIMEOUT_MS: '1000' });
    const live = await openSocket(server.port, '/socket/echo');
    const pings: number[] = [];
    live.ws.on('ping', () => pings.push(Date.now()));
    const silent = await rawSocket(server.port, '/socket/echo');
    // The raw client never answers a ping: it is dropped within a few idle timeouts.
    await silent.closed;
    live.ws.send('still here?');
    expect(await live.next((message) => message === 'echo:still here?')).toBe('echo:still here?');
    if (name !== 'deno') expect(pings.length).toBeGreaterThan(0);
    live.ws.close();
    expect(errors(server.logs)).toEqual([]);
  });

  it('at the drain: the app says goodbye, every socket gets 1001, and the process exits 0 with no ERROR', async () => {
    const server = await start();
    const clients = await Promise.all([1, 2, 3].map(() => openSocket(server.port, '/socket/echo')));
    // One peer that never answers the close: the drain still ends, after the close wait.
    const deaf = await rawSocket(server.port, '/socket/echo');
    server.proc.kill('SIGTERM');
    for (const client of clients) {
      expect(await client.next((message) => message === 'draining')).toBe('draining');
      expect(await client.closed).toMatchObject({ code: 1001 });
    }
    expect(await server.exited).toEqual({ code: 0, signal: null });
    await deaf.closed;
    expect(closeCodes(deaf.received())).toContain(1001);
    // The app's onClose ran once for every socket before the exit, the deaf one's too. On node that one
    // is 1006 (no close came back); Bun reports every socket closed 1001 at once, Deno 1005 (docs/websockets.md).
    const closes = server.logs.filter((line) => line.message === 'socket closed').map((line) => line.code);
    expect(closes).toHaveLength(4);
    const expected = {
      node: [1001, 1001, 1001, 1006],
      node24: [1001, 1001, 1001, 1006],
      bun: [1001, 1001, 1001, 1001],
      deno: [1005, 1005, 1005, 1005],
    };
    expect(closes.sort()).toEqual(expected[name]);
    expect(errors(server.logs)).toEqual([]);
  });

  it('closes 1011 when the app handler throws, logs it at ERROR, and serves on', async () => {
    const server = await start();
    const client = await openSocket(server.port, '/socket/throw');
    client.ws.send('boom');
    expect((await client.closed).code).toBe(1011);
    const line = await server.waitForLog((entry) => entry.message === 'websocket handler failed');
    expect(line.severity).toBe('ERROR');
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
  });

  it('closes 1011 instead when the app closes with a code or reason ws would throw on, from a timer', async () => {
    const server = await start();
    for (const query of ['code=1005', 'code=999', `code=4000&reason=${'r'.repeat(200)}`]) {
      const client = await openSocket(server.port, `/socket/close?${query}`);
      expect((await client.closed).code, query).toBe(1011);
    }
    const fine = await openSocket(server.port, '/socket/close?code=4000&reason=bye');
    expect(await fine.closed).toEqual({ code: 4000, reason: 'bye' });
    expect(server.proc.exitCode).toBe(null);
    // Deno's one known line aside (docs/runtimes.md): nothing on stderr.
    expect(server.stderr().replace(/^Deno\.serve: request\.signal aborts.*\n/m, '')).toBe('');
  });

  it('closes the socket on a malformed frame (a reserved opcode), never the server', async () => {
    const server = await start();
    const raw = await rawSocket(server.port, '/socket/echo');
    // Opcode 3 is reserved (RFC 6455 §5.2): every server must fail the connection.
    raw.socket.write(clientFrame(3, Buffer.from('reserved')));
    await raw.closed;
    // Deno's parser drops the connection with no close frame (docs/websockets.md); ws and Bun say 1002.
    expect(closeCodes(raw.received())).toEqual(name === 'deno' ? [] : [1002]);
    const client = await openSocket(server.port, '/socket/echo');
    client.ws.send('after');
    expect(await client.next()).toBe('echo:after');
    client.ws.close();
    expect(errors(server.logs)).toEqual([]);
  });

  it('survives a client that resets its connection while the app checks its upgrade', async () => {
    const server = await start();
    for (let i = 0; i < 5; i++) {
      const raw = connect(server.port, '127.0.0.1');
      raw.on('error', () => {});
      await new Promise((resolve) => raw.once('connect', resolve));
      raw.write(
        'GET /socket/slow?ms=200 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      await server.waitForLog(
        (line) =>
          line.message === 'slow socket check started' &&
          server.logs.filter((l) => l.message === line.message).length > i,
      );
      raw.resetAndDestroy();
    }
    // After the checks end: the upgrades find their clients gone.
    const client = await openSocket(server.port, '/socket/slow?ms=400');
    expect(await client.next()).toBe('welcome');
    client.ws.close();
    expect(server.proc.exitCode).toBe(null);
    expect(errors(server.logs)).toEqual([]);
  });

  it('refuses a HEAD or a bodied upgrade with a problem, through the rate limit and with an access line', async () => {
    const server = await start({ RATE_LIMIT_RPS: '100' });
    const handshake = {
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'x-request-id': 'head-upgrade',
    };
    const head = await fetchRaw(server.port, '/socket/echo', { method: 'HEAD', headers: handshake });
    expect(head.status).toBe(400);
    const bodied = await fetchRaw(server.port, '/socket/echo', {
      headers: { ...handshake, 'x-request-id': 'bodied-upgrade', 'content-length': '5' },
      body: 'hello',
    });
    expect(bodied.status).toBe(400);
    if (name === 'deno') {
      // Deno answers a bodied upgrade with an empty 400 of its own, before the app (docs/websockets.md).
      expect(bodied.body).toBe('');
    } else {
      expect(JSON.parse(bodied.body).code).toBe('bad_websocket_handshake');
      expect(bodied.headers.ratelimit).toBeDefined();
      await server.waitForLog((line) => line.message === 'request' && line.requestId === 'bodied-upgrade');
    }
    expect(errors(server.logs)).toEqual([]);
  });

  it('answers 503 when the handler deadline passes while the app checks the upgrade, with no ERROR', async () => {
    const server = await start({ HANDLER_TIMEOUT_MS: '300' });
    const late = await refusedUpgrade(server.port, '/socket/slow?ms=600');
    expect(late.status).toBe(503);
    expect(JSON.parse(late.body).code).toBe('handler_timeout');
    // The app's check ends after the answer: the helper must not touch the request then.
    await server.waitForLog((line) => line.message === 'slow socket check ended');
    const client = await openSocket(server.port, '/socket/slow?ms=0');
    expect(await client.next()).toBe('welcome');
    client.ws.close();
    expect(errors(server.logs)).toEqual([]);
  });

  it('gives back the slot of a client that leaves before its 101, and the drain exits 0', async () => {
    const server = await start({ WEBSOCKET_MAX_CONNECTIONS: '2', WEBSOCKET_IDLE_TIMEOUT_MS: '1000' });
    for (let i = 0; i < 5; i++) {
      const socket = connect(server.port, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(
        'GET /socket/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      socket.resetAndDestroy();
    }
    // Deno reports nothing for a socket whose client left before the 101: it is given up after
    // OPEN_WAIT_MS (10 s). The others know at once. Bounded, not timed.
    let opened: Awaited<ReturnType<typeof openSocket>> | undefined;
    for (let tries = 0; !opened && tries < 100; tries++) {
      opened = await openSocket(server.port, '/socket/echo').catch(async () => {
        await new Promise((resolve) => setTimeout(resolve, 250));
        return undefined;
      });
    }
    expect(opened).toBeDefined();
    const second = await openSocket(server.port, '/socket/echo');
    server.proc.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    await second.closed;
    expect(errors(server.logs)).toEqual([]);
  });

  it('drops a client that does not read what the app sends it', async () => {
    const server = await start();
    const raw = await rawSocket(server.port, '/socket/flood');
    // Never read: what the app sends piles up at the server until the hub's bound.
    raw.socket.pause();
    const line = await server.waitForLog((entry) => entry.message === 'websocket client not reading, dropped');
    expect(line.severity).toBe('WARNING');
    raw.socket.destroy();
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
  });

  it('tells the app nothing after onClose, and not inside its own send, when it drops a client that does not read', async () => {
    const server = await start();
    const raw = await rawSocket(server.port, '/socket/burst');
    raw.socket.pause();
    // Five messages in one write: the first makes the app send more than the bound, the rest are
    // still in the chunk the runtime is parsing when the socket is dropped.
    raw.socket.write(Buffer.concat([1, 2, 3, 4, 5].map((n) => clientFrame(1, Buffer.from(`m${n}`)))));
    const closed = await server.waitForLog((entry) => entry.message === 'socket closed');
    // A request served after it: the chunk's frames were all parsed by then.
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    raw.socket.destroy();
    expect(server.logs.filter((entry) => entry.message === 'socket message after close')).toEqual([]);
    expect(server.logs.filter((entry) => entry.message === 'socket closed')).toHaveLength(1);
    // No close frame came back: 1006 on every runtime (Deno reports 0 for it).
    expect(closed.code).toBe(1006);
    // Bun reports the close from inside its terminate(), which the hub cannot defer.
    if (name !== 'bun') expect(closed.insideSend).toBe(false);
    expect(errors(server.logs)).toEqual([]);
  });
});

// Deno has no message limit of its own: a message arrives whole before the hub can refuse it
// (deno-server.ts, docs/runtimes.md's table); and it answers pings itself, with no bound the runtime
// can set. These hold on node and Bun only.
describe.each(['node', 'bun'] as const)('WebSocket message limit on %s', (name) => {
  it('drops a client that floods pings and never reads the pongs', async () => {
    const server = await startFixture({}, 'started', { runtime: runtime(name) });
    const raw = await rawSocket(server.port, '/socket/echo');
    raw.socket.pause();
    const ping = clientFrame(9, Buffer.alloc(125, 0x70));
    // Bounded: at most 64 MiB of pongs could be owed; the server must give up long before.
    for (let i = 0; i < 500_000 && !raw.socket.destroyed; i++) {
      if (!raw.socket.write(ping)) await new Promise((resolve) => setTimeout(resolve, 5));
      if (i % 1000 === 0 && server.proc.exitCode !== null) break;
    }
    raw.socket.resume();
    await raw.closed;
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    expect(errors(server.logs)).toEqual([]);
  });

  it('refuses a message over the limit from its frame header, before its body arrives', async () => {
    const server = await startFixture({ WEBSOCKET_MAX_MESSAGE_BYTES: '1000' }, 'started', { runtime: runtime(name) });
    const raw = await rawSocket(server.port, '/socket/echo');
    // A text frame announcing 10 MB, masked, of which only the first kilobyte is ever sent.
    const header = Buffer.alloc(14);
    header[0] = 0x81;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(10_000_000n, 2);
    raw.socket.write(Buffer.concat([header, Buffer.alloc(1024, 0x78)]));
    await raw.closed;
    expect(closeCodes(raw.received())).toEqual([1009]);
  });
});

// Bun answers no request pipelined behind a slow one, upgrade or not (the hostile review, outside
// WebSockets); Deno serves them in turn. On node an upgrade waits its turn.
describe.each(['node', 'node24'] as const)('a pipelined upgrade on %s', (name) => {
  it('answers the requests before it in order, then upgrades', async () => {
    const server = await startFixture({}, 'started', { runtime: runtime(name) });
    const socket = connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.write(
      'GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /socket/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await server.waitForLog((line) => line.message === 'socket opened');
    socket.write(clientFrame(1, Buffer.from('after')));
    for (let tries = 0; !text.includes('echo:after') && tries < 200; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => match[1]);
    expect(statuses).toEqual(['200', '200', '101']);
    expect(text).toContain('done');
    expect(text).toContain('hello');
    expect(text).toContain('echo:after');
    socket.destroy();
  });
});
