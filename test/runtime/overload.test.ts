import { readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import { type Fixture, fetchRaw, type Reply, rawConnect, startFixture } from '../helpers.js';

// Shedding, the event-loop guard and the rate limiter, on real sockets
// against the fixture server in a child process.

function rssBytes(fixture: Fixture): number {
  const status = readFileSync(`/proc/${fixture.proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

function problemOf(reply: Reply) {
  expect(reply.headers['content-type']).toBe('application/problem+json');
  return JSON.parse(reply.body) as { code: string; status: number };
}

/** A keep-alive socket that pipelines batches and counts the answers by status, without keeping them. */
async function pipelined(port: number) {
  const conn = await rawConnect(port);
  const statuses = new Map<string, number>();
  let answered = 0;
  let carry = '';
  let wake: (() => void) | undefined;
  conn.socket.on('data', (chunk: string) => {
    const text = carry + chunk;
    for (const match of text.matchAll(/HTTP\/1\.1 (\d{3}) /g)) {
      answered++;
      statuses.set(match[1] as string, (statuses.get(match[1] as string) ?? 0) + 1);
    }
    // A status line split across chunks is counted with the next one.
    const cut = text.lastIndexOf('HTTP/1.1 ');
    carry =
      cut !== -1 && cut > text.length - 13 ? text.slice(cut) : text.slice(-12).replace(/.*HTTP\/1\.1 \d{3} /s, '');
    wake?.();
  });
  return {
    statuses,
    async send(requests: string[]) {
      const target = answered + requests.length;
      conn.socket.write(requests.join(''));
      while (answered < target) await new Promise<void>((resolve) => (wake = resolve));
    },
  };
}

describe('cap on requests in flight', () => {
  it('answers 503 with Retry-After at once past the cap, while accepted requests complete and probes stay 200', async () => {
    const server = await startFixture({ MAX_INFLIGHT_REQUESTS: '2' });
    const slow = [fetchRaw(server.port, '/slow?ms=1500'), fetchRaw(server.port, '/slow?ms=1500')];
    await server.waitForLog(
      (line) =>
        line.message === 'slow request started' &&
        server.logs.filter((l) => l.message === 'slow request started').length === 2,
    );

    const refused = await fetchRaw(server.port, '/');
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(problemOf(refused).code).toBe('overloaded');
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    expect((await fetchRaw(server.port, '/readyz')).status).toBe(200);

    const done = await Promise.all(slow);
    expect(done.map((reply) => reply.status)).toEqual([200, 200]);
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    const summary = await server.waitForLog((line) => line.message === 'requests refused');
    expect(summary.refused).toMatchObject({ max_inflight: 1 });
  });

  it('does not count requests still sending their body against the cap', async () => {
    const server = await startFixture({ MAX_INFLIGHT_REQUESTS: '2' });
    const uploads = await Promise.all([0, 1, 2].map(() => rawConnect(server.port)));
    for (const upload of uploads) {
      upload.socket.write(
        'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nx',
      );
    }
    // Three slow uploads and a cap of two: a fast client is still served.
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
    expect((await fetchRaw(server.port, '/echo', { method: 'POST', body: 'small' })).body).toBe('{"bytes":5}');
    expect((await fetchRaw(server.port, '/readyz')).status).toBe(200);
    // Once their bodies arrive, the uploads are served too.
    for (const upload of uploads) upload.socket.end('y'.repeat(99_999));
    await Promise.all(uploads.map((upload) => upload.closed.catch(() => undefined)));
    for (const upload of uploads) expect(upload.received()).toMatch(/^HTTP\/1\.1 200 [\s\S]*\{"bytes":100000\}$/);
  });

  it('keeps the slot of an answer that sits in memory for a client that stopped reading, until it is cut', async () => {
    const server = await startFixture({ MAX_INFLIGHT_REQUESTS: '1', WRITE_TIMEOUT_MS: '1000' });
    const reader = await rawConnect(server.port);
    reader.socket.pause();
    // 64 MiB buffered at once: far more than the socket takes, so most of it waits in the process.
    reader.socket.write('GET /big?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n');
    await server.waitForLog((line) => line.message === 'big answer ready');
    const refused = await fetchRaw(server.port, '/');
    expect(refused.status).toBe(503);
    expect(problemOf(refused).code).toBe('overloaded');
    // The write timeout cuts the reader, and frees the slot with its memory.
    await server.waitForLog((line) => line.message === 'write timeout, closing connection');
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
  });

  it('refuses a request with a body past the cap without waiting for the body', async () => {
    const server = await startFixture({ MAX_INFLIGHT_REQUESTS: '1' });
    const slow = fetchRaw(server.port, '/slow?ms=1500');
    await server.waitForLog((line) => line.message === 'slow request started');
    const conn = await rawConnect(server.port);
    // Announces a gigabyte and sends none of it: the answer must come anyway.
    conn.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 503 /);
    expect(conn.received()).toMatch(/connection: close/i);
    expect((await slow).status).toBe(200);
  });
});

describe('event-loop delay shedding', () => {
  it('turns /readyz 503 and sheds new requests while a CPU-bound route holds the loop, then recovers', async () => {
    const server = await startFixture({ MAX_EVENT_LOOP_DELAY_MS: '100' });
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    let driving = true;
    // Two clients keep 300 ms CPU-bound requests coming back to back.
    const drivers = [0, 1].map(async () => {
      for (let i = 0; driving && i < 200; i++) await fetchRaw(server.port, '/busy?ms=300', { agent });
    });

    let readyDown: Reply | undefined;
    let shed: Reply | undefined;
    for (let i = 0; i < 300 && !(readyDown && shed); i++) {
      const [ready, plain] = await Promise.all([fetchRaw(server.port, '/readyz'), fetchRaw(server.port, '/')]);
      if (ready.status === 503) readyDown = ready;
      if (plain.status === 503) shed = plain;
      // Liveness never follows readiness down: an overloaded process must not be restarted.
      expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    }
    driving = false;
    await Promise.all(drivers);
    agent.destroy();

    expect(readyDown, 'readiness never turned 503').toBeDefined();
    expect(JSON.parse(readyDown?.body ?? '{}').checks).toMatchObject({ event_loop: 'down' });
    expect(shed, 'no request was shed').toBeDefined();
    expect(shed?.headers['retry-after']).toBe('1');
    expect(problemOf(shed as Reply).code).toBe('overloaded');
    await server.waitForLog((line) => line.message === 'event loop overloaded, shedding new requests');

    // Recovery needs no restart: poll (bounded) until both are back.
    let recovered = false;
    for (let i = 0; i < 100 && !recovered; i++) {
      const [ready, plain] = await Promise.all([fetchRaw(server.port, '/readyz'), fetchRaw(server.port, '/')]);
      recovered = ready.status === 200 && plain.status === 200;
      if (!recovered) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(recovered).toBe(true);
    await server.waitForLog((line) => line.message === 'event loop recovered');
  });
});

describe('event-loop delay measure', () => {
  it('counts only the delay beyond the monitor tick: an idle server under a 9 ms bound sheds nothing', async () => {
    // monitorEventLoopDelay records tick intervals of at least its 10 ms
    // resolution; read as the delay itself, every sample would pass 9 ms.
    const server = await startFixture({ MAX_EVENT_LOOP_DELAY_MS: '9' });
    // Warm-up: the first requests load and compile the request path, a real delay.
    for (let i = 0; i < 3; i++) await fetchRaw(server.port, '/');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      statuses.push((await fetchRaw(server.port, '/')).status);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    expect(
      statuses.every((status) => status === 200),
      JSON.stringify(statuses),
    ).toBe(true);
    expect((await fetchRaw(server.port, '/readyz')).status).toBe(200);
  });
});

describe('rate limit per trusted client IP', () => {
  it('answers 429 with Retry-After and the RateLimit fields once the burst is spent', async () => {
    const server = await startFixture({ RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '3' });
    const replies: Reply[] = [];
    for (let i = 0; i < 4; i++) replies.push(await fetchRaw(server.port, '/'));
    expect(replies.map((reply) => reply.status)).toEqual([200, 200, 200, 429]);
    expect(replies.map((reply) => reply.headers.ratelimit)).toEqual([
      '"per-client";r=2;t=1',
      '"per-client";r=1;t=2',
      '"per-client";r=0;t=3',
      '"per-client";r=0;t=3',
    ]);
    const limited = replies[3] as Reply;
    expect(limited.headers['ratelimit-policy']).toBe('"per-client";q=3;w=3');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(problemOf(limited).code).toBe('rate_limited');
    // Probes are never limited: the load balancer shares one address with nobody.
    for (let i = 0; i < 5; i++) expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
  });

  it('does not let a forged X-Forwarded-For buy a fresh bucket, with or without trusted proxies', async () => {
    for (const trusted of [undefined, 'loopback']) {
      const server = await startFixture({
        RATE_LIMIT_RPS: '1',
        RATE_LIMIT_BURST: '2',
        ...(trusted ? { TRUSTED_PROXIES: trusted } : {}),
      });
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        // Behind a trusted proxy the proxy appends the real client (203.0.113.9); the left part is the client's forgery.
        const forged = `198.51.100.${i}`;
        const header = trusted ? `${forged}, 203.0.113.9` : forged;
        statuses.push((await fetchRaw(server.port, '/', { headers: { 'x-forwarded-for': header } })).status);
      }
      expect(statuses, `TRUSTED_PROXIES=${trusted}`).toEqual([200, 200, 429, 429, 429]);
    }
  });

  it('gives each of 100 000 clients behind a trusted proxy its own bucket, and remembers a spent one', async () => {
    const total = 100_000;
    const request = (i: number) =>
      `GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.${i >> 16}.${(i >> 8) & 255}.${i & 255}\r\n\r\n`;
    // The same flood with the limiter off is the control: pipelined load
    // alone grows V8's heap, and only what the limiter adds is its cost.
    const flood = async (limited: boolean) => {
      const server = await startFixture(
        {
          ...(limited ? { RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '1' } : {}),
          TRUSTED_PROXIES: 'loopback',
          LOG_LEVEL: 'warn',
          // Pipelined requests are all in flight at once: no cap here.
          MAX_INFLIGHT_REQUESTS: '0',
        },
        'none',
      );
      const sockets = await Promise.all([0, 1, 2, 3].map(() => pipelined(server.port)));
      await sockets[0]?.send(Array.from({ length: 1000 }, (_, i) => request(200_000 + i)));
      const baseline = rssBytes(server);
      let peak = baseline;
      const batch = 500;
      await Promise.all(
        sockets.map(async (conn, s) => {
          for (let start = s * batch; start < total; start += sockets.length * batch) {
            await conn.send(Array.from({ length: batch }, (_, i) => request(start + i)));
            peak = Math.max(peak, rssBytes(server));
          }
        }),
      );
      const counts = sockets.map((conn) => Object.fromEntries(conn.statuses));
      return { server, growth: peak - baseline, counts };
    };

    const control = await flood(false);
    const { server, growth, counts } = await flood(true);
    // Every address is new: none of them may be refused.
    expect(counts.reduce((sum, byStatus) => sum + (byStatus['200'] ?? 0), 0)).toBe(total + 1000);
    expect(counts.some((byStatus) => byStatus['429'] !== undefined)).toBe(false);
    // A spent bucket is remembered: the same client again is refused.
    expect((await fetchRaw(server.port, '/', { headers: { 'x-forwarded-for': '10.1.134.159' } })).status).toBe(429);
    const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
    // Reported, not asserted: the pipelined flood alone moves RSS by 90-110 MB run to run, more than
    // 100 000 buckets cost (measured differences 27-49 MB on this machine), so a bound here fails on
    // noise and could not tell a bounded limiter from an unbounded one. The bound is exact, in-process:
    // rate-limit.test.ts, "never holds more than maxClients buckets".
    console.log(`100 000 clients: RSS growth ${mb(growth)} MB with the limiter, ${mb(control.growth)} MB without`);
  }, 120_000);
});
