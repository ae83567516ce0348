import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fetchRaw, rawConnect, startFixture } from '../helpers.js';

const GiB = 1024 ** 3;

function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;
}

/**
 * Uploads up to `total` bytes of zeros as fast as the server takes them,
 * stopping when the server closes the connection. Resolves with what the
 * server answered and how much was sent.
 */
function upload(port: number, mode: 'content-length' | 'chunked', total: number, path = '/echo') {
  return new Promise<{ response: string; sent: number }>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    let response = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ response, sent });
    };
    socket.on('data', (data) => {
      response += data.toString('latin1');
    });
    socket.on('error', finish);
    socket.on('close', finish);
    const pump = () => {
      while (!done && sent < total) {
        const piece =
          mode === 'chunked'
            ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
            : chunk;
        sent += chunk.length;
        if (!socket.write(piece)) return void socket.once('drain', pump);
      }
      if (!done && mode === 'chunked') socket.write('0\r\n\r\n');
    };
    socket.once('connect', () => {
      const length = mode === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`;
      socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${length}\r\n\r\n`);
      pump();
    });
  });
}

describe('body limit', () => {
  it('answers a Content-Length over the limit with 413 before reading the body', async () => {
    const server = await startFixture({ BODY_LIMIT_BYTES: '1000' });
    const conn = await rawConnect(server.port);
    // Headers only: a server that waited for the body would never answer.
    conn.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 413 /);
    expect(conn.received()).toMatch(/connection: close/i);
    const body = JSON.parse(conn.received().split('\r\n\r\n')[1] ?? '');
    expect(body).toMatchObject({ status: 413, code: 'body_too_large', title: 'Payload Too Large' });
  });

  it('refuses an oversized body announced with Expect: 100-continue without inviting it', async () => {
    const server = await startFixture({ BODY_LIMIT_BYTES: '1000' });
    const conn = await rawConnect(server.port);
    conn.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 413 /);
    expect(conn.received()).not.toContain('100 Continue');
  });

  it('cuts a chunked body as soon as it passes the limit', async () => {
    const server = await startFixture({ BODY_LIMIT_BYTES: '100000' });
    const result = await upload(server.port, 'chunked', 64 * 1024 * 1024);
    expect(result.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(result.sent).toBeLessThan(64 * 1024 * 1024);
  });

  it('passes a body within the limit to the handler intact', async () => {
    const server = await startFixture({ BODY_LIMIT_BYTES: '100000' });
    const chunked = await upload(server.port, 'chunked', 64 * 1024, '/echo');
    expect(chunked.response).toMatch(/^HTTP\/1\.1 200 /);
    expect(chunked.response).toContain('{"bytes":65536}');
    const reply = await fetchRaw(server.port, '/echo', { method: 'POST', body: Buffer.alloc(99_999) });
    expect(JSON.parse(reply.body)).toEqual({ bytes: 99_999 });
  });

  it('lets a route raise its own limit above the default', async () => {
    const server = await startFixture({ BODY_LIMIT_BYTES: '1000' });
    const big = Buffer.alloc(2 * 1024 * 1024);
    expect(JSON.parse((await fetchRaw(server.port, '/upload', { method: 'POST', body: big })).body)).toEqual({
      bytes: big.length,
    });
    expect(
      (await fetchRaw(server.port, '/echo', { method: 'POST', body: big }).catch(() => ({ status: 413 }))).status,
    ).toBe(413);
  });

  it('keeps memory flat under 20 concurrent 1 GiB uploads, with and without Content-Length', async () => {
    const server = await startFixture();
    const pid = server.proc.pid as number;
    const baseline = rssBytes(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssBytes(pid));
    }, 20);
    const uploads = Array.from({ length: 20 }, (_, i) =>
      upload(server.port, i % 2 === 0 ? 'content-length' : 'chunked', GiB),
    );
    const results = await Promise.all(uploads);
    clearInterval(sampler);
    for (const result of results) expect(result.response).toMatch(/^HTTP\/1\.1 413 /);
    // Nothing near 20 GiB was taken from the clients: they were cut off.
    expect(results.reduce((sum, r) => sum + r.sent, 0)).toBeLessThan(4 * GiB);
    console.log(
      `20 x 1 GiB uploads: RSS ${Math.round(baseline / 2 ** 20)} MB -> peak ${Math.round(peak / 2 ** 20)} MB`,
    );
    expect(peak - baseline).toBeLessThan(50 * 1024 * 1024);
    // And the server still serves.
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
  });
});

describe('the memory all bodies may hold together', () => {
  const MiB = 1024 * 1024;
  const head = (length: number) =>
    `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${length}\r\n\r\n`;

  it('refuses, unread, a body that does not fit in MAX_BUFFERED_BODY_BYTES, and takes it once the others end', async () => {
    const server = await startFixture({ MAX_BUFFERED_BODY_BYTES: String(4 * MiB) });
    // Four bodies of 1 MiB each hold the whole budget, one byte short of complete.
    const held = await Promise.all(Array.from({ length: 4 }, () => rawConnect(server.port)));
    for (const conn of held) conn.socket.write(head(MiB) + 'a'.repeat(MiB - 1));
    // No event says the four were read as far as they go: ask until the budget is seen full, bounded.
    let refused = await fetchRaw(server.port, '/echo', { method: 'POST', body: 'x'.repeat(1024) });
    for (let i = 0; i < 100 && refused.status !== 503; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      refused = await fetchRaw(server.port, '/echo', { method: 'POST', body: 'x'.repeat(1024) });
    }
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'overloaded' });
    expect(JSON.parse(refused.body).detail).toContain('request bodies held in memory');
    const summary = await server.waitForLog((line) => line.message === 'requests refused');
    expect(summary.totals).toMatchObject({ body_memory: 1 });
    // Bodies without one still count, chunk by chunk.
    const chunked = await rawConnect(server.port);
    chunked.socket.write(
      `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n${'c'.repeat(1024)}\r\n`,
    );
    await chunked.closed;
    expect(chunked.received()).toMatch(/^HTTP\/1\.1 503 /);
    // The held bodies complete and are served; their bytes go back to the budget.
    for (const conn of held) conn.socket.end('a');
    await Promise.all(held.map((conn) => conn.closed));
    for (const conn of held) expect(conn.received()).toMatch(/^HTTP\/1\.1 200 [\s\S]*\{"bytes":1048576\}$/);
    expect((await fetchRaw(server.port, '/echo', { method: 'POST', body: 'x'.repeat(1024) })).body).toBe(
      '{"bytes":1024}',
    );
  });

  it('answers 413 to a body larger than the whole budget', async () => {
    const server = await startFixture({ MAX_BUFFERED_BODY_BYTES: String(2 * MiB) });
    // The /upload route allows 4 MiB, more than the budget: it could never be held.
    const conn = await rawConnect(server.port);
    conn.socket.write(head(3 * MiB).replace('/echo', '/upload'));
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 413 /);
  });
});
