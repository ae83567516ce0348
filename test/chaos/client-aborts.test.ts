import { describe, expect, it, onTestFinished } from 'vitest';
import {
  type Bundle,
  downReason,
  expectSurvived,
  label,
  rssMb,
  send,
  startBundle,
  tally,
  tokenFor,
  within,
} from './bundle.js';
import { type ChaosDatabase, chaosPostgres, expectPoolBack, poolCount, poolSettled } from './database.js';
import { type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { campaignRandom, type Random } from './random.js';
import { type RawRequest, rawClient, rawRequest } from './raw-client.js';

/**
 * Clients that go away at every stage of a request, on every route: in the
 * middle of the headers, after the headers, in the middle of the body, right
 * after the whole request, while the handler waits on the database (a table
 * lock held by the test, seen in pg_stat_activity; for /readyz, a slow
 * network seen at the proxy), and in the middle of the answer; with a FIN or
 * a reset; or a body that breaks HTTP/1.1 (answered 400); in a seeded order,
 * several at once, for several rounds. After each round the process must be up with no fatal line; at the end the pool's
 * connections are back to their baseline and RSS is bounded.
 */

const ROUNDS = 4;
const MB_BOUND = 100;
const LARGE_BODY = 'x'.repeat(10_000);

type Stage =
  | 'mid-headers'
  | 'after-headers'
  | 'mid-body'
  | 'garbled-body'
  | 'after-request'
  | 'db-wait'
  | 'mid-response';
const STAGES: Stage[] = [
  'mid-headers',
  'after-headers',
  'mid-body',
  'garbled-body',
  'after-request',
  'db-wait',
  'mid-response',
];

interface Context {
  token: string;
  noteId(): string;
  deletable(): string;
  title(): string;
}

interface Route {
  name: string;
  /** How the handler waits on the database: a query on `notes`, the readiness ping, or not at all. */
  db: 'notes' | 'readiness' | 'none';
  /** The request has a body: it can be cut after its headers or in the middle of its body. */
  body?: true;
  make(ctx: Context): RawRequest;
}

const json = (value: unknown) => JSON.stringify(value);

const ROUTES: Route[] = [
  { name: 'GET /healthz', db: 'none', make: () => rawRequest('GET', '/healthz') },
  { name: 'GET /readyz', db: 'readiness', make: () => rawRequest('GET', '/readyz') },
  { name: 'GET /', db: 'none', make: () => rawRequest('GET', '/') },
  { name: 'GET /v1/notes?limit=1', db: 'notes', make: (c) => rawRequest('GET', '/v1/notes?limit=1', c) },
  { name: 'GET /v1/notes?limit=100', db: 'notes', make: (c) => rawRequest('GET', '/v1/notes?limit=100', c) },
  { name: 'GET /v1/notes/:id', db: 'notes', make: (c) => rawRequest('GET', `/v1/notes/${c.noteId()}`, c) },
  {
    name: 'POST /v1/notes',
    db: 'notes',
    body: true,
    make: (c) => rawRequest('POST', '/v1/notes', { ...c, body: json({ title: c.title(), body: 'aborted' }) }),
  },
  {
    name: 'POST /v1/notes with Idempotency-Key',
    db: 'notes',
    body: true,
    make: (c) => {
      const title = c.title();
      return rawRequest('POST', '/v1/notes', { ...c, headers: { 'idempotency-key': title }, body: json({ title }) });
    },
  },
  {
    name: 'PATCH /v1/notes/:id',
    db: 'notes',
    body: true,
    make: (c) => rawRequest('PATCH', `/v1/notes/${c.noteId()}`, { ...c, body: json({ body: c.title() }) }),
  },
  { name: 'DELETE /v1/notes/:id', db: 'notes', make: (c) => rawRequest('DELETE', `/v1/notes/${c.deletable()}`, c) },
  // The change feed: a stream whose queries read note_changes, so the lock on notes does not hold it.
  { name: 'GET /v1/notes/events', db: 'none', make: (c) => rawRequest('GET', '/v1/notes/events', c) },
  {
    name: 'GET /v1/notes/events after Last-Event-ID 1',
    db: 'none',
    make: (c) => rawRequest('GET', '/v1/notes/events', { ...c, headers: { 'last-event-id': '1' } }),
  },
  { name: 'GET /nope (404)', db: 'none', make: () => rawRequest('GET', '/nope') },
  { name: 'PUT /v1/notes (405)', db: 'none', make: (c) => rawRequest('PUT', '/v1/notes', c) },
  {
    name: 'POST /v1/notes over the body limit (413)',
    db: 'none',
    body: true,
    make: (c) =>
      rawRequest('POST', '/v1/notes', {
        ...c,
        headers: { 'content-length': String(2 * 2 ** 20) },
        body: 'x'.repeat(65_536),
      }),
  },
];

function applies(route: Route, stage: Stage): boolean {
  if (stage === 'after-headers' || stage === 'mid-body' || stage === 'garbled-body') return route.body === true;
  if (stage === 'db-wait') return route.db !== 'none';
  return true;
}

interface Step {
  route: Route;
  stage: Stage;
}

interface Campaign {
  server: Bundle;
  db: ChaosDatabase;
  proxy: FaultProxy;
  random: Random;
  ctx: Context;
  /** Statuses seen by mid-response aborts, per route. */
  seen: string[];
  /** What each client whose chunked body broke HTTP/1.1 was answered, per route. */
  garbled: string[];
}

/** Waits (polling, bounded: no event says a backend started waiting) until a runway backend waits on a lock. */
async function untilWaitingOnLock(db: ChaosDatabase) {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const [row] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = ${db.name} and application_name = 'runway' and wait_event_type = 'Lock'`;
    if ((row?.n ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const states = await db.sql<{ state: string; wait: string | null; query: string }[]>`
    select state, wait_event_type as wait, left(query, 40) as query from pg_stat_activity
    where datname = ${db.name} and application_name = 'runway'`;
  throw new Error(`no runway backend waited on the lock within 5 s; runway backends: ${JSON.stringify(states)}`);
}

/** The status line and the body of what a raw client received: the body names the problem. */
function answerOf(received: string): string {
  if (received === '') return 'nothing';
  const status = received.slice(0, received.indexOf('\r\n'));
  const body = received.slice(received.indexOf('\r\n\r\n') + 4);
  return JSON.stringify(`${status} ${body.slice(0, 300)}`);
}

async function abortOnce({ server, db, proxy, random, ctx, seen, garbled }: Campaign, { route, stage }: Step) {
  // Every choice is drawn before the first await: steps run several at once,
  // and the order of their draws must not depend on timing (CHAOS_SEED replays them).
  const request = route.make(ctx);
  const kind = random.chance(0.7) ? 'fin' : 'rst';
  const headCut = random.int(1, request.head.length - 3);
  const bodyCut = request.body.length > 1 ? random.int(1, request.body.length - 1) : 0;
  const client = await rawClient(server.port).catch(async (error: Error) => {
    throw new Error(`${route.name} ${stage}: could not connect (${error.message}): ${await downReason(server)}`);
  });
  const whole = Buffer.concat([request.head, request.body]);
  switch (stage) {
    case 'mid-headers':
      await client.write(request.head.subarray(0, headCut));
      break;
    case 'after-headers':
      await client.write(request.head);
      break;
    case 'mid-body':
      await client.write(Buffer.concat([request.head, request.body.subarray(0, bodyCut)]));
      break;
    case 'after-request':
      await client.write(whole);
      break;
    case 'garbled-body': {
      // A chunked body whose second chunk size is not a number: answered 400 in its turn, then closed.
      const chunked = request.head
        .toString('latin1')
        .replace(/content-length: \d+\r\n/i, 'transfer-encoding: chunked\r\n');
      await client.write(Buffer.concat([Buffer.from(chunked, 'latin1'), Buffer.from('5\r\nhello\r\nZZZ\r\n')]));
      await within(client.closed, 10_000, `${route.name}: the answer to a garbled body`);
      garbled.push(`${route.name} ${client.status() ?? 'nothing'}`);
      return;
    }
    case 'mid-response': {
      await client.write(whole);
      const first = await within(client.firstData, 10_000, `${route.name}: first bytes of the answer`);
      seen.push(`${route.name} ${/^HTTP\/1\.1 (\d{3})/.exec(first ?? '')?.[1] ?? 'closed'}`);
      break;
    }
    case 'db-wait':
      if (route.db === 'readiness') {
        // A slow network to the database: the ping is on its way when the client goes.
        await proxy.set({ latencyMs: 300 });
        const sent = new Promise<void>((resolve) => {
          const off = proxy.onClientData(() => {
            off();
            resolve();
          });
        });
        await client.write(whole);
        await within(sent, 5_000, 'the readiness ping reaching the proxy');
        client.abort(kind);
        await proxy.heal();
        return;
      }
      {
        // The test holds a lock on notes: the handler's query waits on it in Postgres.
        const lock = await db.sql.reserve();
        try {
          await lock`begin`;
          await lock`lock table notes in access exclusive mode`;
          await client.write(whole);
          await untilWaitingOnLock(db).catch((error: Error) => {
            throw new Error(`${route.name} ${stage}: ${error.message}; the client got ${answerOf(client.received())}`);
          });
          client.abort(kind);
        } finally {
          await lock`rollback`;
          lock.release();
        }
      }
      return;
  }
  client.abort(kind);
}

describe('client aborts at every stage, on every route', () => {
  const postgresFor = chaosPostgres();

  it(`stays up with no fatal line after ${ROUNDS} rounds of aborts, its pool back to baseline and RSS bounded`, async () => {
    const random = campaignRandom('client-aborts');
    const pg = await postgresFor();
    const db = await pg.database();
    const proxy = await startFaultProxy(pg.cluster.port, onTestFinished);
    const server = await startBundle({ DATABASE_URL: db.urlVia(proxy.port) });
    const token = await tokenFor('chaos-aborts');

    // Notes to read, patch and delete; large bodies so a page of them is an answer worth cutting.
    const create = async (title: string) => {
      const reply = await send(server.port, {
        method: 'POST',
        path: '/v1/notes',
        token,
        body: json({ title, body: LARGE_BODY }),
      });
      expect(reply.status, `seeding ${title}: ${'body' in reply ? reply.body : label(reply)}`).toBe(201);
      return (JSON.parse((reply as { body: string }).body) as { id: string }).id;
    };
    const notes: string[] = [];
    for (let i = 0; i < 30; i++) notes.push(await create(`seed-${i}`));
    const deletable: string[] = [];
    for (let i = 0; i < 2 * ROUNDS * 3; i++) deletable.push(await create(`deletable-${i}`));
    let counter = 0;
    const ctx: Context = {
      token,
      noteId: () => random.pick(notes),
      // Once they are used up, a valid id of nothing: 404 after the query.
      deletable: () => deletable.pop() ?? crypto.randomUUID(),
      title: () => `aborted-${counter++}`,
    };

    // Every route answered once as a well-behaved client would: the baseline.
    for (const route of ROUTES.filter((r) => !r.name.includes('413'))) {
      const client = await rawClient(server.port);
      await client.write(Buffer.concat(Object.values(route.make(ctx))));
      await within(client.firstData, 10_000, `${route.name} before the campaign`);
      client.abort('fin');
    }
    const baseline = Math.max(1, (await poolCount(db)).total);
    const rssBefore = rssMb(server);

    const campaign: Campaign = { server, db, proxy, random, ctx, seen: [], garbled: [] };
    const steps: Step[] = [];
    for (const route of ROUTES) {
      for (const stage of STAGES) if (applies(route, stage)) steps.push({ route, stage });
    }
    let aborts = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const order = random.shuffle(steps);
      // The database-wait aborts hold a table lock: one at a time, after the others.
      const together = order.filter((step) => step.stage !== 'db-wait');
      const alone = order.filter((step) => step.stage === 'db-wait');
      while (together.length > 0) {
        const batch = together.splice(0, random.int(1, 8));
        await within(
          Promise.all(batch.map((step) => abortOnce(campaign, step))),
          30_000,
          `round ${round}: ${batch.map((s) => `${s.route.name} ${s.stage}`).join(', ')}`,
        );
        aborts += batch.length;
      }
      for (const step of alone) {
        await within(abortOnce(campaign, step), 15_000, `round ${round}: ${step.route.name} ${step.stage}`);
        aborts++;
      }
      await expectSurvived(server, `after round ${round} of client aborts`);
    }

    const after = await send(server.port, { path: '/v1/notes?limit=5', token });
    expect(label(after), 'a list after the campaign').toBe('200');
    const pool = await poolSettled(db, baseline);
    const rssAfter = rssMb(server);
    const statuses = tally(campaign.seen.map((s) => s.slice(s.lastIndexOf(' ') + 1)));
    console.log(
      `client aborts: ${aborts} aborts (${steps.length} route × stage pairs, ${ROUNDS} rounds); ` +
        `answers seen by mid-response aborts ${JSON.stringify(statuses)}, by garbled bodies ` +
        `${JSON.stringify(tally(campaign.garbled.map((s) => s.slice(s.lastIndexOf(' ') + 1))))}; pool baseline ${baseline}, after ${pool.total} ` +
        `(busy ${pool.busy}); RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MB`,
    );
    expectPoolBack(pool, baseline, 'after the client aborts');
    expect(
      campaign.garbled.filter((answer) => !answer.endsWith(' 400')),
      'garbled bodies not answered 400',
    ).toEqual([]);
    expect(campaign.garbled.length).toBeGreaterThan(0);
    expect(
      Object.keys(statuses).filter((status) => status.startsWith('5')),
      'mid-response answers in 5xx',
    ).toEqual([]);
    expect(rssAfter - rssBefore, 'RSS growth, MB').toBeLessThan(MB_BOUND);
    await expectSurvived(server, 'after the client aborts');
  }, 240_000);

  it('frees every in-flight slot after clients that pipeline requests and leave', async () => {
    const random = campaignRandom('client-aborts, pipelined');
    const pg = await postgresFor();
    const db = await pg.database();
    const CAP = 20;
    const server = await startBundle({ DATABASE_URL: db.url, MAX_INFLIGHT_REQUESTS: String(CAP) });
    const token = await tokenFor('chaos-pipelined');
    const paths = ['/', '/v1/notes?limit=1', '/v1/notes?limit=100', '/nope'];
    let sent = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const clients = await Promise.all(Array.from({ length: random.int(10, 40) }, () => rawClient(server.port)));
      await Promise.all(
        clients.map(async (client) => {
          const requests = Array.from({ length: random.int(2, 5) }, () =>
            rawRequest('GET', random.pick(paths), { token }),
          );
          sent += requests.length;
          await client.write(Buffer.concat(requests.map((request) => request.head)));
          // Gone at once, or once the first answer began.
          if (random.int(0, 1) === 1) await within(client.firstData, 10_000, 'a first answer');
          client.abort(random.pick(['fin', 'rst'] as const));
        }),
      );
      await expectSurvived(server, `after round ${round} of pipelined aborts`);
    }
    // Node 20 and 22 never close an answer queued behind another on a socket that went: unless the
    // runtime does, its slot stays taken for good. A full cap of concurrent requests must all run.
    let statuses: string[] = [];
    for (let attempt = 0; attempt < 50; attempt++) {
      statuses = (
        await Promise.all(Array.from({ length: CAP }, () => send(server.port, { path: '/v1/notes?limit=1', token })))
      ).map(label);
      if (statuses.every((status) => status === '200')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    console.log(
      `pipelined aborts: ${sent} requests on clients that left; then ${CAP} at once: ${JSON.stringify(tally(statuses))}`,
    );
    expect(tally(statuses)).toEqual({ 200: CAP });
    await expectSurvived(server, 'after the pipelined aborts');
  }, 120_000);
});
