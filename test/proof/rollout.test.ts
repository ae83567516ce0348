import { Agent, request } from 'node:http';
import { build } from 'esbuild';
import { sign } from 'hono/jwt';
import postgres from 'postgres';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleOptions } from '../../src/build/bundle-options.js';
import { freshDatabase } from '../db-helpers.js';
import { deliveryOf, subscribeEvents, subscribeSocket } from '../feed-clients.js';
import { type Fixture, freePort, spawnProgram, startFixture } from '../helpers.js';
import { startHaproxy } from './haproxy.js';

/**
 * `npm run test:rollout`: two instances of the built artifact behind HAProxy
 * on the real Postgres, under a steady mixed load (reads, and writes with an
 * Idempotency-Key), through five rolling restarts of both. runway must lose
 * nothing; the same rollout with SHUTDOWN_DELAY_MS=0 and a naive serve()
 * are run beside it and reported, to show what the drain prevents.
 */

const KEY = 'r'.repeat(48);
const CYCLES = 5;
const EVERY_MS = 4; // 250 requests a second, one write in four
const NAIVE = '.cache/test/naive-server.mjs';

interface Outcome {
  scenario: string;
  /** Change-feed subscribers: what each received, against what the database holds (runway only). */
  feed?: { subscribers: number; reconnects: number[]; delivered: string[]; expected: number } | undefined;
  errorLines: string[];
  requests: number;
  failed: number;
  failures: Record<string, number>;
  writesOk: number;
  writesMissingOrDoubled: number;
  restarts: number;
  exitCodes: (number | null)[];
  drainMs: number[];
}

// Of each kind: server-sent events, and WebSockets.
const SUBSCRIBERS = 4;

function problemCode(body: string): string {
  try {
    return String((JSON.parse(body) as { code?: unknown }).code);
  } catch {
    return 'not a problem (the proxy?)';
  }
}

async function rollout(
  scenario: string,
  program: string,
  env: Record<string, string>,
  { subscribers = 0 } = {},
): Promise<Outcome> {
  const url = await freshDatabase();
  const migrate = spawnProgram('dist/server.js', { DATABASE_URL: url }, ['migrate']);
  expect((await migrate.exited).code).toBe(0);

  const ports = { a: await freePort(), b: await freePort() };
  const base = { DATABASE_URL: url, JWT_SIGNING_KEY: KEY, NODE_ENV: 'production', HOST: '127.0.0.1', ...env };
  const waitFor = program === NAIVE ? 'none' : 'started';
  const launch = (name: 'a' | 'b') => startFixture({ ...base, PORT: String(ports[name]) }, waitFor, { program });
  const instances: Record<'a' | 'b', Fixture> = { a: await launch('a'), b: await launch('b') };
  const everyInstance: Fixture[] = [instances.a, instances.b];
  const proxy = await startHaproxy(await freePort(), [
    { name: 'a', port: ports.a },
    { name: 'b', port: ports.b },
  ]);
  await proxy.waitForState('a', 'UP');
  await proxy.waitForState('b', 'UP');

  const now = Math.floor(Date.now() / 1000);
  const token = await sign({ sub: 'rollout', iat: now, exp: now + 3600 }, KEY, 'HS256');
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const call = (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
    new Promise<number | string>((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: proxy.port,
          method,
          path,
          agent,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (status >= 300) body += chunk;
          });
          // A failure is reported with its problem code (`503 overloaded`), or who answered it (HAProxy's own 503).
          res.on('end', () => resolve(status < 300 ? status : `${status} ${problemCode(body)}`));
          res.on('error', (error) => resolve(error.message));
        },
      );
      req.setTimeout(20_000, () => req.destroy(new Error('client timeout')));
      req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      req.end(body);
    });

  const seeded = await call('POST', '/v1/notes', JSON.stringify({ title: 'seed' }));
  expect(seeded).toBe(201);
  const seedSql = postgres(url, { max: 1, onnotice: () => {} });
  const [seed] = await seedSql<{ id: string }[]>`select id from notes where title = 'seed'`;
  // Subscribed before the load: every note the load creates must reach every subscriber, once, in order.
  const stopFeed = new AbortController();
  const subs = Array.from({ length: subscribers }, () => subscribeEvents(proxy.port, token, stopFeed.signal));
  const [startSeq] = await seedSql<{ seq: string }[]>`select coalesce(max(seq), 0)::text as seq from note_changes`;
  // The WebSocket clients resume from that seq on their first connection too: no race with the load.
  for (let i = 0; i < subscribers; i++) {
    subs.push(subscribeSocket(proxy.port, token, startSeq?.seq ?? '0', stopFeed.signal));
  }

  // Confirmed before the load: a new SSE subscriber starts after the newest change when the server
  // takes it, so a note created before that (the load's first, under a slow start) is not its to get.
  await Promise.all(subs.map((sub) => sub.subscribed));

  // The load: open loop, a fixed rate, until the rollout is over.
  let running = true;
  const results: Promise<void>[] = [];
  const failures: Record<string, number> = {};
  const okWrites: string[] = [];
  let requests = 0;
  const load = (async () => {
    for (let n = 0; running; n++) {
      requests++;
      const write = n % 4 === 0;
      const title = `rollout-${n}`;
      const done = write
        ? call('POST', '/v1/notes', JSON.stringify({ title }), { 'idempotency-key': title })
        : call('GET', `/v1/notes/${seed?.id}`);
      results.push(
        done.then((status) => {
          const ok = typeof status === 'number' && status >= 200 && status < 300;
          if (!ok) failures[String(status)] = (failures[String(status)] ?? 0) + 1;
          else if (write) okWrites.push(title);
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, EVERY_MS));
    }
  })();

  const exitCodes: (number | null)[] = [];
  const drainMs: number[] = [];
  let restarts = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    for (const name of ['a', 'b'] as const) {
      const old = instances[name];
      old.proc.kill('SIGTERM');
      const { code } = await old.exited;
      exitCodes.push(code);
      const complete = old.logs.find((line) => line.message === 'shutdown complete');
      if (complete) drainMs.push(complete.drainMs as number);
      instances[name] = await launch(name);
      everyInstance.push(instances[name]);
      await proxy.waitForState(name, 'UP');
      restarts++;
    }
  }
  running = false;
  await load;
  await Promise.all(results);
  agent.destroy();

  const rows = await seedSql<{ title: string; count: number }[]>`
    select title, count(*)::int as count from notes where title like 'rollout-%' group by title`;
  const counts = new Map(rows.map((row) => [row.title, row.count]));
  const writesMissingOrDoubled = okWrites.filter((title) => counts.get(title) !== 1).length;
  // Every note created after the subscribers started, in the order of its seq.
  const createdRows = await seedSql<{ seq: string }[]>`
    select seq::text as seq from note_changes
    where kind = 'created' and note_changes.seq > ${startSeq?.seq ?? '0'}::bigint order by note_changes.seq`;
  const expected = createdRows.map((row) => row.seq);
  // The subscribers catch up (bounded), then stop.
  const caughtUp = async () => {
    for (let tries = 0; tries < 200; tries++) {
      if (subs.every((sub) => sub.created.length >= expected.length)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  await caughtUp();
  stopFeed.abort();
  await Promise.all(subs.map((sub) => sub.done));
  await seedSql.end({ timeout: 1 });
  const delivered = subs.map((sub) => deliveryOf(sub, expected));

  for (const name of ['a', 'b'] as const) {
    instances[name].proc.kill('SIGTERM');
    exitCodes.push((await instances[name].exited).code);
  }
  await proxy.stop();
  const failed = Object.values(failures).reduce((sum, n) => sum + n, 0);
  const errorLines = everyInstance.flatMap((instance) =>
    instance.logs.filter((line) => line.severity === 'ERROR').map((line) => line.message),
  );
  return {
    scenario,
    feed: subscribers
      ? {
          subscribers: subs.length,
          reconnects: subs.map((sub) => sub.reconnects),
          delivered,
          expected: expected.length,
        }
      : undefined,
    errorLines,
    requests,
    failed,
    failures,
    writesOk: okWrites.length,
    writesMissingOrDoubled,
    restarts,
    exitCodes,
    drainMs,
  };
}

function report(outcome: Outcome) {
  const drains = outcome.drainMs.length ? `${Math.min(...outcome.drainMs)}-${Math.max(...outcome.drainMs)} ms` : '-';
  console.log(
    [
      `rollout, ${outcome.scenario}: ${outcome.requests} requests, ${outcome.failed} failed ${JSON.stringify(outcome.failures)},`,
      `${outcome.writesOk} writes answered 2xx (${outcome.writesMissingOrDoubled} missing or doubled in the database),`,
      `${outcome.restarts} restarts, exit codes ${JSON.stringify(outcome.exitCodes)}, drain per instance ${drains}`,
      outcome.drainMs.length ? `(${outcome.drainMs.join(', ')} ms)` : '',
      outcome.feed
        ? `; ${outcome.feed.subscribers} change-feed subscribers, ${outcome.feed.expected} notes created, reconnects ${JSON.stringify(outcome.feed.reconnects)}: ${JSON.stringify(outcome.feed.delivered)}`
        : '',
      outcome.errorLines.length ? `; ERROR lines ${JSON.stringify(outcome.errorLines)}` : '',
    ].join(' '),
  );
}

describe('rolling restarts behind HAProxy', () => {
  beforeAll(async () => {
    await build({
      ...bundleOptions,
      conditions: ['runway-source'],
      entryPoints: ['test/proof/naive-server.ts'],
      outfile: NAIVE,
    });
  });

  it('loses no request, no write and no change-feed event (SSE or WebSocket) through five rolling restarts of both instances', async () => {
    const outcome = await rollout(
      'runway, SHUTDOWN_DELAY_MS=1000',
      'dist/server.js',
      { SHUTDOWN_DELAY_MS: '1000' },
      { subscribers: SUBSCRIBERS },
    );
    report(outcome);
    expect(outcome.feed?.delivered).toEqual(Array(2 * SUBSCRIBERS).fill('every created note, once, in order'));
    // Each reconnected at least once per restart it was connected to: the drains ended their streams and sockets.
    for (const reconnects of outcome.feed?.reconnects ?? []) expect(reconnects).toBeGreaterThanOrEqual(CYCLES);
    expect(outcome.errorLines).toEqual([]);
    expect(outcome.restarts).toBe(2 * CYCLES);
    expect(outcome.failures).toEqual({});
    expect(outcome.writesOk).toBeGreaterThan(100);
    expect(outcome.writesMissingOrDoubled).toBe(0);
    expect(outcome.exitCodes.every((code) => code === 0)).toBe(true);
    // Each drain is the delay plus what was in flight: bounded well below the grace.
    expect(Math.max(...outcome.drainMs)).toBeLessThan(5_000);
  }, 180_000);

  it('reports what the same rollout costs without the shutdown delay', async () => {
    const outcome = await rollout('runway, SHUTDOWN_DELAY_MS=0', 'dist/server.js', { SHUTDOWN_DELAY_MS: '0' });
    report(outcome);
    // Reported, not asserted to be zero: this is the cost the delay exists for.
    expect(outcome.writesMissingOrDoubled).toBe(0);
    expect(outcome.exitCodes.every((code) => code === 0)).toBe(true);
  }, 180_000);

  it('reports the same rollout against a naive serve() with no drain (the baseline may fail)', async () => {
    const outcome = await rollout('naive serve(), no drain', NAIVE, {});
    report(outcome);
    expect(outcome.restarts).toBe(2 * CYCLES);
  }, 180_000);
});
