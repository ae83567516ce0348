import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, expect } from 'vitest';
import { type Cluster, createCluster } from '../pg-cluster.js';

/**
 * The campaign's Postgres: a cluster of the file's own (test/pg-cluster.ts,
 * so it can be killed and restarted), a database per scenario, and the
 * checks made through a direct connection: the runway pool's connections
 * in pg_stat_activity, and how many times each acknowledged write is stored.
 */

export interface ChaosDatabase {
  name: string;
  /** For the server (or a proxy in front of the cluster: swap the port). */
  url: string;
  urlVia(port: number): string;
  /** A direct connection to this database, for assertions. */
  sql: postgres.Sql;
}

export interface ChaosPostgres {
  cluster: Cluster;
  database(): Promise<ChaosDatabase>;
}

/** Call at the top of a describe: the cluster starts in beforeAll (by `ready()`) and is destroyed afterAll. */
export function chaosPostgres() {
  let state: ChaosPostgres | undefined;
  const ends: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const end of ends.reverse()) await end().catch(() => undefined);
    await state?.cluster.destroy();
  });
  return async (): Promise<ChaosPostgres> => {
    if (state) return state;
    const cluster = await createCluster();
    const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
    ends.push(() => admin.end({ timeout: 1 }));
    state = {
      cluster,
      async database() {
        const name = `chaos_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
        await admin.unsafe(`create database ${name}`);
        const url = `postgres://postgres@127.0.0.1:${cluster.port}/${name}`;
        const sql = postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 5 });
        ends.push(() => sql.end({ timeout: 1 }));
        return { name, url, urlVia: (port) => `postgres://postgres@127.0.0.1:${port}/${name}`, sql };
      },
    };
    return state;
  };
}

export interface PoolCount {
  total: number;
  /** Connections not idle: running a statement, or idle inside a transaction. */
  busy: number;
  /** What each busy one is doing, for the message of a failed check. */
  busyStates?: string[];
}

/** The runway pool's connections to `db`, as Postgres sees them. */
export async function poolCount(db: ChaosDatabase): Promise<PoolCount> {
  const rows = await db.sql<{ state: string | null; wait: string | null; query: string; seconds: number }[]>`
    select state, wait_event_type || ':' || wait_event as wait, left(query, 60) as query,
      extract(epoch from now() - state_change)::int as seconds
    from pg_stat_activity where datname = ${db.name} and application_name = 'runway'`;
  const busy = rows.filter((row) => row.state !== 'idle');
  return {
    total: rows.length,
    busy: busy.length,
    busyStates: busy.map((row) => `${row.state} ${row.seconds} s (${row.wait ?? 'no wait'}): ${row.query}`),
  };
}

/**
 * Waits (polling: no event tells a connection closed on the server) until no
 * pooled connection is busy and there are at most `baseline`, or `withinMs`
 * passed; resolves to the last count.
 */
export async function poolSettled(db: ChaosDatabase, baseline: number, withinMs = 20_000): Promise<PoolCount> {
  const deadline = Date.now() + withinMs;
  let count = await poolCount(db);
  while ((count.busy > 0 || count.total > baseline) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    count = await poolCount(db);
  }
  return count;
}

/** No pooled connection leaked: none busy, and no more than the baseline (idle ones time out). */
export function expectPoolBack(count: PoolCount, baseline: number, after: string) {
  expect(
    { total: count.total, busy: count.busy },
    `${after}: runway connections in pg_stat_activity, 20 s after (baseline ${baseline}); busy: ${JSON.stringify(count.busyStates)}`,
  ).toEqual({
    total: Math.min(count.total, baseline),
    busy: 0,
  });
}

/** Titles acknowledged with 2xx that are not in the database exactly once, with their counts. */
export async function writesNotOnce(db: ChaosDatabase, titles: string[]): Promise<Record<string, number>> {
  if (titles.length === 0) return {};
  const rows = await db.sql<{ title: string; count: number }[]>`
    select title, count(*)::int as count from notes where title in ${db.sql(titles)} group by title`;
  const counts = new Map(rows.map((row) => [row.title, row.count]));
  const wrong: Record<string, number> = {};
  for (const title of titles) if (counts.get(title) !== 1) wrong[title] = counts.get(title) ?? 0;
  return wrong;
}
