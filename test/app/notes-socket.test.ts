import { sign } from 'hono/jwt';
import { describe, expect, it } from 'vitest';
import { runtime } from '../../scripts/runtimes.js';
import { freshDatabase } from '../db-helpers.js';
import { type Fixture, fetchRaw, startFixture } from '../helpers.js';
import { openSocket, refusedUpgrade } from '../websocket-client.js';

/**
 * The change feed over a WebSocket, GET /v1/notes/socket (src/app/notes/feed.ts), on the
 * service's own bundle and a real database, on each runtime: the same feed as the SSE one.
 */

const KEY = 'k'.repeat(48);

async function tokenFor(sub: string) {
  const now = Math.floor(Date.now() / 1000);
  return sign({ sub, iat: now, exp: now + 600 }, KEY, 'HS256');
}

async function service(name: 'node' | 'bun' | 'deno'): Promise<Fixture> {
  const url = await freshDatabase();
  return startFixture(
    { DATABASE_URL: url, MIGRATE_ON_START: 'true', JWT_SIGNING_KEY: KEY, SHUTDOWN_DELAY_MS: '0' },
    'started',
    { runtime: runtime(name), program: 'dist/server.js' },
  );
}

async function write(server: Fixture, user: string, method: string, path: string, body?: object) {
  const reply = await fetchRaw(server.port, path, {
    method,
    headers: { authorization: `Bearer ${await tokenFor(user)}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  expect(reply.status).toBeLessThan(300);
  return reply.body ? (JSON.parse(reply.body) as { id: string }) : undefined;
}

const subscribe = async (server: Fixture, user: string) =>
  openSocket(server.port, '/v1/notes/socket', { authorization: `Bearer ${await tokenFor(user)}` });

const parsed = (messages: string[]) => messages.map((message) => JSON.parse(message) as Record<string, string>);

describe.each(['node', 'bun', 'deno'] as const)('the change feed over a WebSocket on %s', (name) => {
  it("sends ready, then the owner's changes in order, none of another owner's; resumes with no gap or duplicate", async () => {
    const server = await service(name);
    const feed = await subscribe(server, 'ws-a');
    feed.ws.send(JSON.stringify({ resume: null }));
    const ready = JSON.parse(await feed.next()) as { type: string; seq: string };
    expect(ready.type).toBe('ready');
    await write(server, 'ws-other', 'POST', '/v1/notes', { title: 'not theirs' });
    const note = await write(server, 'ws-a', 'POST', '/v1/notes', { title: 'first' });
    const id = note?.id as string;
    await write(server, 'ws-a', 'PATCH', `/v1/notes/${id}`, { title: 'second' });
    await write(server, 'ws-a', 'DELETE', `/v1/notes/${id}`);
    await feed.next((message) => message.includes('"deleted"'));
    const changes = parsed(feed.messages).slice(1);
    expect(changes.map((change) => change.type)).toEqual(['created', 'updated', 'deleted']);
    expect(changes.map((change) => change.id)).toEqual([id, id, id]);
    const seqs = changes.map((change) => Number(change.seq));
    expect(seqs[0]).toBeGreaterThan(Number(ready.seq));
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    feed.ws.close();

    // Resumed after the first change: exactly the two after it.
    const resumed = await subscribe(server, 'ws-a');
    resumed.ws.send(JSON.stringify({ resume: changes[0]?.seq }));
    await resumed.next((message) => message.includes('"deleted"'));
    expect(parsed(resumed.messages).map((m) => [m.type, m.seq])).toEqual([
      ['ready', changes[0]?.seq],
      ['updated', changes[1]?.seq],
      ['deleted', changes[2]?.seq],
    ]);
    resumed.ws.close();

    // A seq this database never had (a restore): told, then the feed goes on from the latest.
    const restored = await subscribe(server, 'ws-a');
    restored.ws.send(JSON.stringify({ resume: '999999999999' }));
    expect(JSON.parse(await restored.next())).toEqual({ type: 'truncated', seq: changes[2]?.seq });
    restored.ws.close();
    server.proc.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });

  it('closes 1008 with a reason on a bad subscribe message, asks for a token, and ends with 1001 at the drain', async () => {
    const server = await service(name);
    for (const bad of ['not json', '{"resume": "abc"}', '{"resume": "1", "extra": true}', '[]']) {
      const feed = await subscribe(server, 'ws-b');
      feed.ws.send(bad);
      const error = JSON.parse(await feed.next()) as { type: string; code: string };
      expect(error).toMatchObject({ type: 'error', code: 'invalid_subscribe' });
      expect((await feed.closed).code).toBe(1008);
    }
    const twice = await subscribe(server, 'ws-b');
    twice.ws.send('{"resume": null}');
    await twice.next();
    twice.ws.send('{"resume": null}');
    expect((await twice.closed).code).toBe(1008);
    const anonymous = await refusedUpgrade(server.port, '/v1/notes/socket');
    expect(anonymous.status).toBe(401);
    const live = await subscribe(server, 'ws-b');
    live.ws.send('{"resume": null}');
    await live.next();
    server.proc.kill('SIGTERM');
    expect((await live.closed).code).toBe(1001);
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });
});
