import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { freePort } from '../../scripts/free-port.js';
import { PatchError, patchedSource, postgresPatches } from '../../src/build/driver-patches.js';
import { createDb, type Db } from '../../src/db/pool.js';
import { createLogger } from '../../src/runtime/logger.js';
import { type Cluster, createCluster } from '../pg-cluster.js';
import {
  cancelHoldingProxy,
  closingServer,
  loopTurns,
  type Outcome,
  outcomeWithin,
  processFaults,
  proxyTo,
  terminate,
  untilActive,
  untilRunning,
} from './driver-faults.js';

/**
 * The postgres.js defects scripts/driver-patches.ts fixes, each driven on a
 * real PostgreSQL 15 (a cluster of this file's own, so its backends can be
 * terminated and its catalog restricted without touching anyone else's) with
 * the patched driver the bundle ships (vitest.config.ts inlines it). Each
 * asserts what the process saw: the failing query settles with an error a
 * caller can catch, and nothing reached uncaughtException or
 * unhandledRejection. Each fails without its patch.
 */

const log = createLogger({ level: 'error' });
let cluster: Cluster;
let admin: postgres.Sql;

beforeAll(async () => {
  cluster = await createCluster();
  admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  // A role that may not read pg_type: the driver's array types query fails for it, every other query runs.
  await admin.unsafe('create role restricted login');
  await admin.unsafe('revoke select on pg_catalog.pg_type from public');
});

afterAll(async () => {
  await admin?.end({ timeout: 1 });
  await cluster?.destroy();
});

const via = (port: number, user = 'postgres') => `postgres://${user}@127.0.0.1:${port}/postgres`;

/** The bare driver, for what runway's pool options cannot express (onclose, reserve). */
function driver(options: postgres.Options<Record<string, postgres.PostgresType>> = {}, url = cluster.url) {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {}, ...options });
  // Bounded: without the #1130 patch an end() already waiting never returns.
  onTestFinished(() => outcomeWithin(sql.end({ timeout: 0 }), 2_000).then(() => undefined));
  return sql;
}

/** runway's own pool (src/db/pool.ts), as the service opens it. */
function runwayPool(url = cluster.url, poolMax = 1): Db {
  const db = createDb({
    url,
    poolMax,
    connectTimeoutMs: 5_000,
    idleTimeoutMs: 60_000,
    maxLifetimeMs: 600_000,
    statementTimeoutMs: 60_000,
    log,
  });
  onTestFinished(() => outcomeWithin(db.end(0), 2_000).then(() => undefined));
  return db;
}

async function backendPid(sql: postgres.Sql | postgres.TransactionSql | postgres.ReservedSql): Promise<number> {
  const [row] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  return Number(row?.pid);
}

const rejectedWith = (code: string) => ({ status: 'rejected', code });

describe('scripts/driver-patches.ts', () => {
  const root = fileURLToPath(new URL('../../node_modules/postgres/', import.meta.url));

  it('applies every patch to the installed postgres.js', () => {
    for (const file of new Set(postgresPatches.map((patch) => patch.file))) {
      const path = join(root, file);
      const patched = patchedSource(path, readFileSync(path, 'utf8'));
      for (const patch of postgresPatches.filter((each) => each.file === file)) {
        expect(patched, patch.upstream).toContain(patch.replace);
      }
    }
  });

  it('fails the build when a patch no longer finds its text', () => {
    const path = join(root, 'src/connection.js');
    expect(() => patchedSource(path, 'the code changed upstream')).toThrow(PatchError);
  });
});

describe('cancelling a query when the database cannot be reached', () => {
  it('returns the cancel, so its failure can be caught instead of being an unhandled rejection', async () => {
    const faults = processFaults();
    const proxy = await proxyTo(cluster.port);
    const sql = driver({}, via(proxy.port));
    const pid = await backendPid(sql);
    const running = sql`select pg_sleep(30)`;
    const first = outcomeWithin(running);
    await untilActive(admin, pid);
    // The cancel needs a new connection (a CancelRequest); the running query keeps its own.
    proxy.stopAccepting();
    const cancel: unknown = running.cancel();
    expect(await outcomeWithin(Promise.resolve(cancel))).toMatchObject(rejectedWith('ECONNREFUSED'));
    await loopTurns();
    expect(faults).toEqual([]);
    await terminate(admin, pid);
    expect(await first).toMatchObject({ status: 'rejected' });
  });
});

describe('a query on a connection whose socket is gone (porsager/postgres#1208, #1154, #1066)', () => {
  it('rejects a transaction whose backend died, and the rollback it then sends, without an uncaught exception', async () => {
    const faults = processFaults();
    const sql = driver();
    let started: (pid: number) => void = () => {};
    const pid = new Promise<number>((resolve) => {
      started = resolve;
    });
    const transaction = outcomeWithin(
      sql.begin(async (tx) => {
        started(await backendPid(tx));
        await tx`select pg_sleep(30)`;
      }),
    );
    await untilActive(admin, await pid);
    await terminate(admin, await pid);
    // The failed sleep makes sql.begin send a rollback on the connection it holds, whose socket is null by now.
    expect(await transaction).toMatchObject(rejectedWith('CONNECTION_CLOSED'));
    await loopTurns();
    expect(faults).toEqual([]);
    expect(await sql`select 1 as x`.then(([row]) => row)).toEqual({ x: 1 });
  });

  it('rejects the next query on a reserved connection whose backend died instead of throwing from a timer', async () => {
    const faults = processFaults();
    let closed: () => void = () => {};
    const connectionClosed = new Promise<void>((resolve) => {
      closed = resolve;
    });
    const sql = driver({ max: 2, onclose: () => closed() });
    const reserved = await sql.reserve();
    await terminate(admin, await backendPid(reserved));
    await connectionClosed;
    expect(await outcomeWithin(reserved`select 1`)).toMatchObject(rejectedWith('CONNECTION_CLOSED'));
    await loopTurns();
    expect(faults).toEqual([]);
  });
});

describe('a query sent between a reset and the close of its connection', () => {
  it('settles with CONNECTION_CLOSED instead of waiting forever', async () => {
    const faults = processFaults();
    const proxy = await proxyTo(cluster.port);
    const sql = driver({}, via(proxy.port));
    const pid = await backendPid(sql);
    const running = sql`select pg_sleep(30)`;
    // Sent from the rejection handler: the driver has seen the reset ('error') and the socket's 'close' is still
    // to come, so the busy connection takes it.
    const next = new Promise<Outcome>((resolve) => {
      running.catch(() => resolve(outcomeWithin(sql`select 1`)));
    });
    const first = outcomeWithin(running);
    await untilActive(admin, pid);
    proxy.reset();
    expect(await first).toMatchObject(rejectedWith('ECONNRESET'));
    expect(await next).toMatchObject(rejectedWith('CONNECTION_CLOSED'));
    await loopTurns();
    expect(faults).toEqual([]);
    expect(await sql`select 1 as x`.then(([row]) => row)).toEqual({ x: 1 });
    // The proxy's reset does not reach the backend; it would sleep on.
    await terminate(admin, pid);
  });
});

describe('the query after a terminated connection reconnects (porsager/postgres#1223)', () => {
  it('runs instead of failing with the old connection’s error', async () => {
    const sql = driver();
    const pid = await backendPid(sql);
    const running = outcomeWithin(sql`select pg_sleep(30)`);
    await untilActive(admin, pid);
    await terminate(admin, pid);
    expect(await running).toMatchObject(rejectedWith('CONNECTION_CLOSED'));
    expect(await outcomeWithin(sql`select 1 as x`.then(([row]) => row))).toEqual({
      status: 'resolved',
      value: { x: 1 },
    });
  });
});

describe('a server that closes every connection during startup (porsager/postgres#1193)', () => {
  it('rejects the query with CONNECTION_CLOSED after one attempt instead of reconnecting forever', async () => {
    const faults = processFaults();
    const server = await closingServer();
    const db = runwayPool(via(server.port), 2);
    expect(await outcomeWithin(db.ping())).toMatchObject(rejectedWith('CONNECTION_CLOSED'));
    expect(server.accepted()).toBe(1);
    expect(faults).toEqual([]);
  });
});

describe('sql.end() after a connection died (porsager/postgres#1130, #1097)', () => {
  // runway's cleanup hook ends the pool with CLEANUP_TIMEOUT_MS as the driver's timeout: a hang here takes all of
  // it, and the cleanup's own bound makes the exit code 1.
  const cleanupTimeoutMs = 60_000;

  it('returns at once when a query failed with its connection before', async () => {
    const db = runwayPool();
    const pid = await backendPid(db.sql);
    const running = outcomeWithin(db.sql`select pg_sleep(30)`);
    await untilActive(admin, pid);
    await terminate(admin, pid);
    expect(await running).toMatchObject(rejectedWith('CONNECTION_CLOSED'));
    expect(await outcomeWithin(db.end(cleanupTimeoutMs))).toEqual({ status: 'resolved', value: undefined });
  });

  it('returns at once when the connection dies while end() waits for its query', async () => {
    const db = runwayPool();
    const pid = await backendPid(db.sql);
    const running = outcomeWithin(db.sql`select pg_sleep(30)`);
    await untilActive(admin, pid);
    const ended = outcomeWithin(db.end(cleanupTimeoutMs));
    await terminate(admin, pid);
    expect(await running).toMatchObject(rejectedWith('CONNECTION_CLOSED'));
    expect(await ended).toEqual({ status: 'resolved', value: undefined });
  });
});

describe('the array types query postgres.js runs on every new connection (porsager/postgres#1192, #1205)', () => {
  it('rejects the first query with its error instead of an unhandled rejection when it fails', async () => {
    const faults = processFaults();
    const db = runwayPool(via(cluster.port, 'restricted'));
    // 42501: permission denied for table pg_type. A statement_timeout cancelling it (#1205) takes the same path.
    expect(await outcomeWithin(db.sql`select 1`)).toMatchObject(rejectedWith('42501'));
    await loopTurns();
    expect(faults).toEqual([]);
    // The connection goes on without array types: the next query runs.
    expect(await outcomeWithin(db.sql`select 1 as x`.then(([row]) => row))).toEqual({
      status: 'resolved',
      value: { x: 1 },
    });
  });

  it('stays on in runway’s pool, because the notes store sends arrays as parameters', async () => {
    // src/app/notes/store.ts: `= any(${versions}::text[])`. With fetch_types: false this is 22P02, a 400.
    const db = runwayPool();
    const [row] = await db.sql<{ versions: string[] }[]>`select ${['a', 'b']}::text[] as versions`;
    expect(row?.versions).toEqual(['a', 'b']);
  });
});

describe('a connection that is never established (porsager/postgres#896, fixed upstream in 3.4.6)', () => {
  it('rejects a query, a reservation and a transaction with the socket error', async () => {
    const faults = processFaults();
    const refusing = via(await freePort());
    const resetting = via((await closingServer({ reset: true })).port);
    for (const [url, code] of [
      [refusing, 'ECONNREFUSED'],
      [resetting, 'ECONNRESET'],
    ] as const) {
      const sql = driver({ max: 3 }, url);
      const outcomes = await Promise.all([
        outcomeWithin(sql`select 1`),
        outcomeWithin(sql.reserve()),
        outcomeWithin(sql.begin((tx) => tx`select 1`)),
      ]);
      expect(outcomes).toMatchObject([rejectedWith(code), rejectedWith(code), rejectedWith(code)]);
    }
    await loopTurns();
    expect(faults).toEqual([]);
  });
});

describe('cancelling a query pipelined behind another on the same connection', () => {
  it('gives the query after it its own rows, and settles the cancelled one', async () => {
    const faults = processFaults();
    const sql = driver();
    await sql`select 1`;
    // One connection: b and c are written behind a while it runs.
    const a = sql`select pg_sleep(0.3), 'a' as v`;
    const b = sql`select 'b' as v`;
    const c = sql`select 'c' as v`;
    const [outcomeA, outcomeB, outcomeC] = [outcomeWithin(a), outcomeWithin(b), outcomeWithin(c)];
    // Polled until it shows: a one-off lookup raced the query on its way (a NaN pid, seen in a full run).
    await untilRunning(admin, 'pg_sleep(0.3)');
    // b is sent but not yet active: its answer is still coming, after a's.
    void Promise.resolve(b.cancel()).catch(() => {});
    expect(await outcomeC).toEqual({ status: 'resolved', value: [{ v: 'c' }] });
    expect((await outcomeA).status).toBe('resolved');
    expect((await outcomeB).status).not.toBe('pending');
    await loopTurns();
    expect(faults).toEqual([]);
  });
});

describe('a transaction that fails in the app, its ROLLBACK fine, with others waiting for the connection', () => {
  it('leaves the connection to the transaction and the reservation queued behind it', async () => {
    const faults = processFaults();
    const sql = driver();
    await sql`select 1`;
    const failed = outcomeWithin(
      sql.begin(async () => {
        throw new Error('the app failed');
      }),
    );
    const next = outcomeWithin(
      sql.begin(async (tx) => {
        await tx`select pg_sleep(0.05)`;
        const [row] = await tx`select 2 as x`;
        return row;
      }),
    );
    const reserved = outcomeWithin(
      (async () => {
        const connection = await sql.reserve();
        const [row] = await connection`select 3 as x`;
        connection.release();
        return row;
      })(),
    );
    expect(await failed).toMatchObject({ status: 'rejected' });
    expect(await next).toEqual({ status: 'resolved', value: { x: 2 } });
    expect(await reserved).toEqual({ status: 'resolved', value: { x: 3 } });
    await loopTurns();
    expect(faults).toEqual([]);
  });

  it('settles 200 transactions on a pool of two, half of them failing in the app, none killed by another', async () => {
    const sql = driver({ max: 2 });
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        outcomeWithin(
          sql.begin(async (tx) => {
            await tx`select 1`;
            if (i % 2 === 0) throw new Error('planned');
            return i;
          }),
        ),
      ),
    );
    const tally: Record<string, number> = {};
    for (const outcome of outcomes) {
      const key =
        outcome.status === 'rejected' ? `rejected ${(outcome as { message?: string }).message}` : outcome.status;
      tally[key] = (tally[key] ?? 0) + 1;
    }
    expect(tally).toEqual({ resolved: 100, 'rejected planned': 100 });
  });
});

describe("the pool's queues under steady load", () => {
  it('stay as long as what they hold, instead of growing by one slot per query', async () => {
    const faults = processFaults();
    const sql = driver({ max: 2 });
    await sql`select 1`;
    // The queues are arrays searched with indexOf whenever a connection moves between them: the longest
    // array searched during the load is the size of the busiest queue's backing array.
    let longest = 0;
    const indexOf = Array.prototype.indexOf;
    Array.prototype.indexOf = function (this: unknown[], ...args: [unknown, number?]) {
      longest = Math.max(longest, this.length);
      return indexOf.apply(this, args);
    };
    try {
      // Eight queries in flight on two connections, each answer sending the next: the busy queue is never empty.
      let sent = 0;
      const lane = async () => {
        while (sent < 3_000) {
          sent++;
          await sql`select 1 as x`;
        }
      };
      await Promise.all(Array.from({ length: 8 }, lane));
    } finally {
      Array.prototype.indexOf = indexOf;
    }
    expect(longest, 'the longest queue array searched').toBeLessThan(300);
    await loopTurns();
    expect(faults).toEqual([]);
  });
});

describe('a transaction whose ROLLBACK fails', () => {
  it('closes its connection instead of keeping it reserved, aborted, out of the pool', async () => {
    const faults = processFaults();
    // The ROLLBACK sql.begin sends after the failed query is garbled on its way (same length, so the
    // message stays well-formed): Postgres rejects it, and the transaction stays open and aborted, as when
    // a late CancelRequest lands on the ROLLBACK.
    const proxy = await proxyTo(cluster.port, {
      rewrite: (chunk) => {
        const at = chunk.indexOf('rollback');
        if (at !== -1) chunk.write('rollbakk', at);
        return chunk;
      },
    });
    const sql = driver({}, via(proxy.port));
    const transaction = outcomeWithin(
      sql.begin(async (tx) => {
        await tx`select 1 / 0`;
      }),
    );
    expect(await transaction).toMatchObject(rejectedWith('42601'));
    // A pool of one: the next query needs that connection, or a new one in its place.
    expect(await outcomeWithin(sql`select 1 as x`)).toEqual({ status: 'resolved', value: [{ x: 1 }] });
    const aborted = await admin<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where state = 'idle in transaction (aborted)'`;
    expect(aborted[0]?.n).toBe(0);
    await loopTurns();
    expect(faults).toEqual([]);
  });
});

describe('cancelling the first query of a connection while it connects', () => {
  it('puts the connection back in the pool for the next query', async () => {
    const faults = processFaults();
    const sql = driver();
    const first = sql`select 1 as one`;
    const outcomeFirst = outcomeWithin(first);
    // The connection is being opened for `first`: cancel it before it is ready.
    await new Promise((resolve) => setImmediate(resolve));
    void Promise.resolve(first.cancel()).catch(() => {});
    expect(await outcomeFirst).toMatchObject(rejectedWith('57014'));
    expect(await outcomeWithin(sql`select 2 as two`)).toEqual({ status: 'resolved', value: [{ two: 2 }] });
    await loopTurns();
    expect(faults).toEqual([]);
  });
});

/**
 * A query whose cancel a proxy holds until the query has ended (and, with
 * `pipelined`, a query postgres.js pipelined behind it on the one connection),
 * then a later query, then the cancel let through while the later one runs:
 * how the later query ended, and whether it ran on the backend the cancel named.
 */
async function lateCancel({ pipelined }: { pipelined: boolean }) {
  const proxy = await cancelHoldingProxy(cluster.port);
  const sql = driver({}, via(proxy.port));
  await sql`select 1`;
  const first = sql`select pg_sleep(0.3), 'first' as v`;
  const outcomeFirst = outcomeWithin(first);
  // One connection, busy: postgres.js pipelines this one behind the first.
  const behind = pipelined ? outcomeWithin(sql`select 'behind' as v`) : undefined;
  const firstPid = await untilRunning(admin, "'first' as v");
  // The cancel is on its way and held; the query ends before it arrives.
  const cancel = Promise.resolve(first.cancel()).catch(() => {});
  await proxy.cancelArrived();
  expect(await outcomeFirst).toMatchObject({ status: 'resolved' });
  if (behind) expect(await behind).toEqual({ status: 'resolved', value: [{ v: 'behind' }] });
  const later = outcomeWithin(sql`select pg_sleep(0.3), 'later' as v`);
  const laterPid = await untilRunning(admin, "'later' as v");
  // Now the late cancel reaches Postgres, while the later query runs.
  proxy.release();
  await cancel;
  return { later: await later, onTheCancelledBackend: laterPid === firstPid };
}

describe('a cancel that arrives after its query ended', () => {
  it('does not cancel the next query: the connection it would land on is closed, not reused', async () => {
    const faults = processFaults();
    const { later, onTheCancelledBackend } = await lateCancel({ pipelined: false });
    expect(later).toMatchObject({ status: 'resolved', value: [{ v: 'later' }] });
    expect(onTheCancelledBackend).toBe(false);
    await loopTurns();
    expect(faults).toEqual([]);
  });

  it('does not cancel a query sent after the queries pipelined behind it: the connection is closed once they drained', async () => {
    const faults = processFaults();
    const { later, onTheCancelledBackend } = await lateCancel({ pipelined: true });
    expect(later).toMatchObject({ status: 'resolved', value: [{ v: 'later' }] });
    expect(onTheCancelledBackend).toBe(false);
    await loopTurns();
    expect(faults).toEqual([]);
  });
});

describe('the query after one that failed part-way through its rows (porsager/postgres#1181)', () => {
  it("gets its own rows from the first index, not after the failed one's", async () => {
    const faults = processFaults();
    const sql = driver();
    // Fails with 22012 at the third row, after two rows were sent.
    const failed = await outcomeWithin(sql`select 1 / (3 - x) as v from generate_series(1, 5) as x`);
    expect(failed).toMatchObject(rejectedWith('22012'));
    const next = await sql`select 1 as x`;
    expect(next.length).toBe(1);
    expect([...next]).toEqual([{ x: 1 }]);
    await loopTurns();
    expect(faults).toEqual([]);
  });
});
