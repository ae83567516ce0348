import { execFileSync } from 'node:child_process';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { fetchRaw, rawConnect, startFixture } from '../helpers.js';

/**
 * Long-lived responses on a real socket through the timeouts and the drain:
 * server-sent events through the runtime's helper (src/runtime/sse.ts) and
 * a raw stream that ignores the drain. Timeouts are short so cuts happen
 * quickly; elapsed times are generous upper bounds, never targets.
 */

interface OpenStream {
  res: IncomingMessage;
  /** Everything received so far. */
  text(): string;
  /** Resolves when the body ended ('end') or the connection was cut ('close' without 'end'). */
  done: Promise<'ended' | 'cut'>;
  destroy(): void;
}

function openStream(port: number, path: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      const done = new Promise<'ended' | 'cut'>((settle) => {
        res.once('end', () => settle('ended'));
        res.once('close', () => settle('cut'));
        res.once('error', () => settle('cut'));
      });
      resolve({ res, text: () => text, done, destroy: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Polls (no event tells it) the kernel's send queue of the server's end of a
 * connection until it holds a megabyte and has stopped growing for 100 ms:
 * the kernel takes no more, and the server's writes wait on backpressure.
 */
async function untilSendQueueFull(serverPort: number, clientPort: number): Promise<void> {
  let last = -1;
  let still = 0;
  for (let tries = 0; tries < 500; tries++) {
    const filter = `( sport = :${serverPort} and dport = :${clientPort} )`;
    const out = execFileSync('ss', ['-tnH', 'state', 'established', filter], { encoding: 'utf8' });
    const sendQueue = Number(out.trim().split(/\s+/)[1] ?? 0);
    still = sendQueue === last ? still + 1 : 0;
    last = sendQueue;
    if (sendQueue > 1024 * 1024 && still >= 5) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`the send queue never filled (${last} bytes)`);
}

const eventIds = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));

describe('a stream through the write timeout', () => {
  it('cuts a client that stops reading, and the stream learns it and ends', async () => {
    const server = await startFixture({ WRITE_TIMEOUT_MS: '1000' });
    // 64 KiB events as fast as they go: the socket's buffers fill within moments of the client pausing.
    const stream = await openStream(server.port, '/events?everyMs=1&bytes=65536');
    stream.res.pause();
    const cut = await server.waitForLog((line) => line.message === 'write timeout, closing connection');
    expect(cut).toMatchObject({ severity: 'WARNING', verdict: 'stalled', writeTimeoutMs: 1000 });
    const ended = await server.waitForLog((line) => line.message === 'stream ended');
    expect(ended.reason).toBe('WriteTimeoutError');
    stream.res.resume();
    expect(await stream.done).toBe('cut');
    // Nothing of it is left in flight: the drain has nothing to wait for.
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });

  it('never cuts a client that reads a stream five times as long as the write timeout', async () => {
    const server = await startFixture({ WRITE_TIMEOUT_MS: '1000' });
    // 100 events of 16 KiB, one every 50 ms: 5 s of a flowing stream.
    const stream = await openStream(server.port, '/events?everyMs=50&bytes=16384&count=100');
    expect(await stream.done).toBe('ended');
    expect(eventIds(stream.text())).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(server.logs.filter((line) => line.message === 'write timeout, closing connection')).toEqual([]);
  });

  it('holds no in-flight slot while it streams: the cap is for handlers', async () => {
    const server = await startFixture({ MAX_INFLIGHT_REQUESTS: '1' });
    const stream = await openStream(server.port, '/events?everyMs=100');
    await server.waitForLog((line) => line.message === 'stream started');
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    stream.destroy();
  });
});

describe('requests pipelined behind a stream', () => {
  it('wait for the stream to end instead of holding in-flight slots: other clients are served', async () => {
    const server = await startFixture({ MAX_INFLIGHT_REQUESTS: '20' });
    // Three sockets, each a stream it keeps reading and 40 requests pipelined behind it (the review's case).
    const conns = await Promise.all([0, 1, 2].map(() => rawConnect(server.port)));
    for (const conn of conns) {
      conn.socket.write(
        `GET /events?everyMs=50 HTTP/1.1\r\nHost: x\r\n\r\n${'GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(40)}`,
      );
    }
    await server.waitForLog(() => server.logs.filter((line) => line.message === 'stream started').length === 3);
    // Ten others at once, each holding its slot for a moment: room for them only if the pipelined hold none.
    const others = await Promise.all(Array.from({ length: 10 }, () => fetchRaw(server.port, '/slow?ms=300')));
    expect(others.map((reply) => reply.status)).toEqual(Array(10).fill(200));
    // Nothing behind the streams ran: their answers could not have gone out before the streams' end.
    for (const conn of conns) expect(conn.received()).not.toContain('hello');
  });
});

describe('HEAD on an event stream', () => {
  // Hono answers HEAD with the GET handler's Response and drops its body without cancelling it: a loop
  // started for it would run, unread and unbounded, until the process exits (the hostile review:
  // 4 000 HEADs left 4 000 streams running, RSS 58 -> 252 MB).
  it("answers with the stream's headers and runs no loop", async () => {
    const server = await startFixture();
    for (let i = 0; i < 20; i++) {
      const reply = await fetchRaw(server.port, '/events?everyMs=1000', { method: 'HEAD' });
      expect(reply.status).toBe(200);
      expect(reply.headers['content-type']).toBe('text/event-stream');
      expect(reply.body).toBe('');
    }
    // A GET after them: its loop is the only one that starts, and its line is logged after theirs would be.
    const stream = await openStream(server.port, '/events?everyMs=10&count=2');
    expect(await stream.done).toBe('ended');
    await server.waitForLog((line) => line.message === 'stream ended');
    expect(server.logs.filter((line) => line.message === 'stream started')).toHaveLength(1);
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});

describe('a stream through the drain', () => {
  it('ends at the drain with a retry hint and its last id, and the exit is 0 with no ERROR line', async () => {
    const server = await startFixture({ SHUTDOWN_DELAY_MS: '300' });
    const stream = await openStream(server.port, '/events?everyMs=50');
    await server.waitForLog((line) => line.message === 'stream started');
    server.proc.kill('SIGTERM');
    expect(await stream.done).toBe('ended');
    const text = stream.text();
    // During the shutdown delay it went on: the load balancer may still route here.
    expect(eventIds(text).length).toBeGreaterThan(3);
    expect(text.endsWith('retry: 500\n\n')).toBe(true);
    expect((await server.exited).code).toBe(0);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });

  it('cuts a client that does not take the retry hint within a second, and the exit stays 0', async () => {
    const server = await startFixture({ SHUTDOWN_DELAY_MS: '0', GRACEFUL_TIMEOUT_MS: '5000' });
    const reader = await openStream(server.port, '/events?everyMs=50');
    // Fast and never read: its socket's buffers are full when the drain comes.
    const paused = await rawConnect(server.port);
    paused.socket.pause();
    paused.socket.write('GET /events?everyMs=1&bytes=65536 HTTP/1.1\r\nHost: x\r\n\r\n');
    await untilSendQueueFull(server.port, paused.socket.localPort as number);
    server.proc.kill('SIGTERM');
    expect(await reader.done).toBe('ended');
    expect(reader.text().endsWith('retry: 500\n\n')).toBe(true);
    expect((await server.exited).code).toBe(0);
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
    expect(server.logs.find((line) => line.message.startsWith('event stream cut at the drain'))).toMatchObject({
      severity: 'WARNING',
    });
  });

  it('logs a loop that throws at once, on the request logger, and sends nothing of it', async () => {
    const server = await startFixture();
    const stream = await openStream(server.port, '/events-throw');
    expect(await stream.done).toBe('ended');
    expect(stream.text()).not.toContain('throws at once');
    const failed = await server.waitForLog((line) => line.message === 'event stream failed');
    expect(failed).toMatchObject({ severity: 'ERROR', error: 'a loop that throws at once' });
    expect(server.stderr()).toBe('');
  });

  it('resumes after Last-Event-ID on a new instance, with no gap and no duplicate', async () => {
    const server = await startFixture();
    const first = await openStream(server.port, '/events?everyMs=20&count=10');
    expect(await first.done).toBe('ended');
    const last = eventIds(first.text()).at(-1) as number;
    const again = await openStream(server.port, '/events?everyMs=20&count=15', { 'last-event-id': String(last) });
    expect(await again.done).toBe('ended');
    expect(eventIds(again.text())).toEqual([10, 11, 12, 13, 14]);
  });

  it('answers a Last-Event-ID that is not one of its ids with a 400 problem', async () => {
    const server = await startFixture();
    const reply = await fetchRaw(server.port, '/events', { headers: { 'last-event-id': 'drop table' } });
    expect(reply.status).toBe(400);
    expect(reply.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(reply.body)).toMatchObject({ code: 'bad_last_event_id' });
  });

  it('aborts a stream that ignores the drain at the deadline, counts it, and exits 1', async () => {
    const server = await startFixture({ SHUTDOWN_DELAY_MS: '0', GRACEFUL_TIMEOUT_MS: '500' });
    const stream = await openStream(server.port, '/raw-stream');
    await server.waitForLog((line) => line.message === 'raw stream started');
    server.proc.kill('SIGTERM');
    // Its signal aborts at the deadline (DrainTimeoutError): this one ends then; one that did not would be cut.
    await stream.done;
    const forced = await server.waitForLog(
      (line) => line.message === 'drain deadline reached, closed in-flight requests',
    );
    expect(forced).toMatchObject({ severity: 'ERROR', inFlight: 1, streams: 1 });
    expect((await server.exited).code).toBe(1);
  });
});
