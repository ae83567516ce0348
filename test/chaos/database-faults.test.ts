import { describe, expect, it, onTestFinished } from 'vitest';
import {
  type Bundle,
  downReason,
  expectNone,
  expectSurvived,
  label,
  send,
  startBundle,
  tally,
  tokenFor,
  within,
} from './bundle.js';
import {
  type ChaosDatabase,
  type ChaosPostgres,
  chaosPostgres,
  expectPoolBack,
  poolCount,
  poolSettled,
  writesNotOnce,
} from './database.js';
import { type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { campaignRandom, type Random } from './random.js';
import { acknowledged, type Readiness, type Sent, startTraffic, watchReadiness } from './traffic.js';

/**
 * Database faults under mixed traffic and a readiness prober: through a
 * fault-injecting proxy (refused, black-holed, reset mid-query, slow) and on
 * a Postgres cluster of the test's own (kill -9 and a restart, also in the
 * middle of the start-up migrations). Expected of each: the process stays
 * up, /healthz 200, /readyz 503 during the fault and 200 soon after it
 * heals, API answers 503 with a problem code and never a 500 (the codes seen
 * are reported), Retry-After on database_unavailable, every answer after
 * recovery 2xx, every write answered 2xx stored exactly once (also after the
 * failed keyed creates are retried with their key), and the pool back to
 * its baseline.
 */

// "Within a few seconds" of the fault and of its end, as an upper bound, not a target.
const DOWN_BOUND_MS = 10_000;
const RECOVERY_BOUND_MS = 10_000;
// A 503 is only honest with one of these codes.
const FAULT_CODES = new Set(['database_unavailable', 'query_timeout', 'handler_timeout']);
const POOL_MAX = '5';

interface FaultContext {
  pg: ChaosPostgres;
  proxy: FaultProxy;
  random: Random;
}

interface Scenario {
  name: string;
  /** Whether the server reaches Postgres through the proxy (else directly: kill -9). */
  viaProxy: boolean;
  /** Only the readiness prober during the fault, no API traffic (what the report's defect needed). */
  probesOnly?: true;
  /** Starts the fault; resolves to what ends it. */
  inject(ctx: FaultContext): Promise<() => Promise<void>>;
}

interface Row {
  fault: string;
  readyzDownAfterMs: number | string;
  readyzUpAfterMs: number | string;
  during: Record<string, number>;
  after: Record<string, number>;
  writes: number;
  notOnce: number;
  /** Runway connections in pg_stat_activity once settled (20 s at most), and their baseline. */
  pool?: string;
}

const rows: Row[] = [];

const SCENARIOS: Scenario[] = [
  {
    name: 'refused: the port closes, open connections are reset',
    viaProxy: true,
    async inject({ proxy }) {
      await proxy.set({ fresh: 'refuse', open: 'reset' });
      return () => proxy.heal();
    },
  },
  {
    name: 'black-holed open connections, new ones refused',
    viaProxy: true,
    async inject({ proxy }) {
      await proxy.set({ fresh: 'refuse', open: 'blackhole' });
      return () => proxy.heal();
    },
  },
  {
    name: 'black-holed open connections, new ones refused, only /readyz polled',
    viaProxy: true,
    probesOnly: true,
    async inject({ proxy }) {
      await proxy.set({ fresh: 'refuse', open: 'blackhole' });
      return () => proxy.heal();
    },
  },
  {
    name: 'black-holed: connects hang, open connections stop answering',
    viaProxy: true,
    async inject({ proxy }) {
      await proxy.set({ fresh: 'blackhole', open: 'blackhole' });
      return () => proxy.heal();
    },
  },
  {
    name: 'reset mid-query: every connection reset as a query goes out',
    viaProxy: true,
    async inject({ proxy, random }) {
      // Half of the resets come before the chunk is forwarded, half after it
      // reached Postgres (a commit may have happened and its answer is lost).
      const off = proxy.onClientData((_chunk, link) => {
        if (random.chance(0.5)) link.reset();
        else setImmediate(() => link.reset());
      });
      return async () => {
        off();
      };
    },
  },
  {
    name: 'latency: 1500 ms added to every chunk, both ways',
    viaProxy: true,
    async inject({ proxy }) {
      await proxy.set({ latencyMs: 1_500 });
      return () => proxy.heal();
    },
  },
  {
    name: 'kill -9 of Postgres under traffic, then a restart',
    viaProxy: false,
    async inject({ pg }) {
      await pg.cluster.kill9();
      return () => pg.cluster.start();
    },
  },
];

function problems(sent: Sent[]) {
  return {
    fiveHundreds: sent.filter(
      (s) =>
        s.outcome.status >= 500 && !(s.outcome.status === 503 && FAULT_CODES.has(label(s.outcome).split(' ')[1] ?? '')),
    ),
    noAnswer: sent.filter((s) => s.outcome.status === 0),
    withoutRetryAfter: sent.filter(
      (s) =>
        label(s.outcome) === '503 database_unavailable' &&
        !('headers' in s.outcome && s.outcome.headers['retry-after']),
    ),
  };
}

/**
 * /readyz 200 within RECOVERY_BOUND_MS of `healAt`; past it, fails, having
 * waited a while longer to say when (or whether) it did turn 200.
 */
async function recovered(ready: Readiness, healAt: number, server: Bundle, what: string): Promise<number> {
  const up = ready.until(200);
  try {
    return await within(up, RECOVERY_BOUND_MS, `/readyz 200 after ${what}`);
  } catch (error) {
    const late = await within(up, 20_000, 'late').catch(() => undefined);
    throw new Error(
      `${(error as Error).message}: it was ${late ? `200 only ${late - healAt} ms after` : 'still not 200 30 s after'}; ` +
        `the answers before: ${JSON.stringify(ready.samples.filter((s) => s.at >= healAt).slice(0, 2))}; ${await downReason(server)}`,
    );
  }
}

async function seedNote(server: Bundle, token: string): Promise<string> {
  const reply = await send(server.port, {
    method: 'POST',
    path: '/v1/notes',
    token,
    body: JSON.stringify({ title: 'seed' }),
  });
  expect(label(reply), `the seed note: ${'body' in reply ? reply.body : ''}`).toBe('201');
  return (JSON.parse((reply as { body: string }).body) as { id: string }).id;
}

/** Retries each keyed create that failed, with its key and body: each must now be 201, stored once. */
async function retryKeyed(server: Bundle, token: string, sent: Sent[]) {
  const failed = sent.filter((s) => s.op === 'create-with-key' && (s.outcome.status < 200 || s.outcome.status >= 300));
  const outcomes = await Promise.all(
    failed.map((s) =>
      send(server.port, {
        method: 'POST',
        path: '/v1/notes',
        token,
        body: s.body as string,
        headers: { 'idempotency-key': s.title as string },
      }).then((outcome) => ({ ...s, phase: 'retry', outcome })),
    ),
  );
  return outcomes;
}

async function runScenario(scenario: Scenario, pg: ChaosPostgres, random: Random): Promise<Row> {
  const db: ChaosDatabase = await pg.database();
  const proxy = await startFaultProxy(pg.cluster.port, onTestFinished);
  const server = await startBundle({
    DATABASE_URL: scenario.viaProxy ? db.urlVia(proxy.port) : db.url,
    DB_POOL_MAX: POOL_MAX,
  });
  const token = await tokenFor('chaos-db');
  const noteId = await seedNote(server, token);
  const ready = watchReadiness(server.port);
  onTestFinished(() => ready.stop());
  await within(ready.until(200), 10_000, 'readyz 200 before the fault');
  const baseline = Math.max(1, (await poolCount(db)).total);

  const traffic = startTraffic(server.port, {
    token,
    noteId,
    random: random.derive(`traffic: ${scenario.name}`),
    prefix: `db-${rows.length}`,
  });
  onTestFinished(() => traffic.stop());
  await within(traffic.answered('before', 10), 20_000, 'answers before the fault');
  if (scenario.probesOnly) await traffic.stop();

  const ctx: FaultContext = { pg, proxy, random: random.derive(`fault: ${scenario.name}`) };
  traffic.setPhase('fault');
  const faultAt = Date.now();
  const heal = await scenario.inject(ctx);
  const downAt = await within(ready.until(503), DOWN_BOUND_MS, `/readyz 503 after "${scenario.name}"`).catch(
    async (error: Error) => {
      throw new Error(`${error.message}: ${await downReason(server)}`);
    },
  );
  const health = await send(server.port, { path: '/healthz' });
  expect(label(health), `/healthz during "${scenario.name}": ${await downReason(server)}`).toBe('200');
  if (scenario.probesOnly) await within(ready.polled(3), 30_000, '/readyz answers during the fault');
  else await within(traffic.answered('fault', 8), 30_000, 'API answers during the fault');

  traffic.setPhase('recovery');
  const healAt = Date.now();
  await heal();
  const upAt = await recovered(ready, healAt, server, `"${scenario.name}" healed`);
  traffic.setPhase('after');
  if (scenario.probesOnly) traffic.resume();
  await within(traffic.answered('after', 15), 30_000, 'API answers after recovery');
  await traffic.stop();
  await ready.stop();

  const retried = await retryKeyed(server, token, traffic.sent);
  const all = [...traffic.sent, ...retried];
  const titles = acknowledged(all);
  const notOnce = await writesNotOnce(db, titles);
  const during = all.filter((s) => s.phase === 'fault' || s.phase === 'recovery');
  const after = all.filter((s) => s.phase === 'after');
  const pool = await poolSettled(db, baseline);
  const row: Row = {
    fault: scenario.name,
    readyzDownAfterMs: downAt - faultAt,
    readyzUpAfterMs: upAt - healAt,
    during: tally(during.map((s) => label(s.outcome))),
    after: tally(after.map((s) => label(s.outcome))),
    writes: titles.length,
    notOnce: Object.keys(notOnce).length,
    pool: `${pool.total} (${pool.busy} busy), baseline ${baseline}`,
  };
  console.log(
    `database fault: ${JSON.stringify(row)}; retried keyed creates: ${JSON.stringify(tally(retried.map((s) => label(s.outcome))))}`,
  );

  await expectSurvived(server, `after "${scenario.name}"`);
  const { fiveHundreds, noAnswer, withoutRetryAfter } = problems(all);
  expectNone(
    fiveHundreds.map((s) => `${s.op}: ${label(s.outcome)}`),
    '5xx answers other than 503 with a fault code',
  );
  expectNone(
    noAnswer.map((s) => `${s.op} (${s.phase}): ${label(s.outcome)}`),
    'requests with no answer',
  );
  expect(withoutRetryAfter.length, '503 database_unavailable without Retry-After').toBe(0);
  if (!scenario.probesOnly) {
    expect(
      during.some((s) => s.outcome.status === 503),
      'the fault was felt: some API answer was 503',
    ).toBe(true);
  }
  expectNone(
    after.filter((s) => s.outcome.status >= 300).map((s) => `${s.op}: ${label(s.outcome)}`),
    'answers after /readyz was 200 again',
  );
  expectNone(
    retried.filter((s) => s.outcome.status !== 201).map((s) => `${s.title}: ${label(s.outcome)}`),
    'keyed creates retried after recovery',
  );
  expect(notOnce, 'writes answered 2xx that are not stored exactly once').toEqual({});
  expectPoolBack(pool, baseline, `after "${scenario.name}"`);
  await expectSurvived(server, `after "${scenario.name}"`);
  return row;
}

describe('database faults under traffic', () => {
  const postgresFor = chaosPostgres();
  let random: Random;

  for (const scenario of SCENARIOS) {
    const expected = scenario.probesOnly
      ? 'stays up, /readyz 503 then 200, then the API answers 2xx'
      : 'stays up, /readyz 503 then 200, API 503 with a code, acknowledged writes stored once';
    it(`${scenario.name}: ${expected}`, async () => {
      random ??= campaignRandom('database-faults');
      const pg = await postgresFor();
      rows.push(await runScenario(scenario, pg, random));
    });
  }

  it('kill -9 of Postgres during the start-up migrations: stays up, /readyz 200 once Postgres is back and migrated', async () => {
    random ??= campaignRandom('database-faults');
    const pg = await postgresFor();
    const db = await pg.database();
    const proxy = await startFaultProxy(pg.cluster.port, onTestFinished);
    // The moment the migration takes its advisory lock, the network holds
    // everything; Postgres is killed; then the network heals onto a dead server.
    const inMigration = new Promise<void>((resolve) => {
      const off = proxy.onClientData((chunk) => {
        if (!chunk.includes('runway_migrations')) return;
        off();
        void proxy.set({ fresh: 'blackhole', open: 'blackhole' });
        resolve();
      });
    });
    const faultAt = Date.now();
    const server = await startBundle({ DATABASE_URL: db.urlVia(proxy.port), DB_POOL_MAX: POOL_MAX }, 'listening');
    await within(inMigration, 10_000, 'the migration reaching the proxy');
    await pg.cluster.kill9();
    await proxy.heal();
    const ready = watchReadiness(server.port);
    onTestFinished(() => ready.stop());
    const downAt = await within(ready.until(503), DOWN_BOUND_MS, '/readyz 503 with Postgres down mid-migration').catch(
      async (error: Error) => {
        throw new Error(`${error.message}: ${await downReason(server)}`);
      },
    );
    const health = await send(server.port, { path: '/healthz' });
    expect(label(health), `/healthz with Postgres down mid-migration: ${await downReason(server)}`).toBe('200');
    const healAt = Date.now();
    await pg.cluster.start();
    const upAt = await recovered(ready, healAt, server, 'Postgres restarted');
    await ready.stop();
    const token = await tokenFor('chaos-migrate');
    const created = await send(server.port, {
      method: 'POST',
      path: '/v1/notes',
      token,
      body: JSON.stringify({ title: 'migrated' }),
    });
    const listed = await send(server.port, { path: '/v1/notes', token });
    const row: Row = {
      fault: 'kill -9 of Postgres during the start-up migrations, then a restart',
      readyzDownAfterMs: downAt - faultAt,
      readyzUpAfterMs: upAt - healAt,
      during: {},
      after: tally([label(created), label(listed)]),
      writes: created.status === 201 ? 1 : 0,
      notOnce: Object.keys(await writesNotOnce(db, created.status === 201 ? ['migrated'] : [])).length,
    };
    console.log(`database fault: ${JSON.stringify(row)}`);
    rows.push(row);
    expect([label(created), label(listed)], 'the API once Postgres is back').toEqual(['201', '200']);
    expect(row.notOnce).toBe(0);
    await expectSurvived(server, 'after the kill -9 during migrations');
  });
});
