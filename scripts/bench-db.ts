import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { sign } from 'hono/jwt';
import postgres from 'postgres';
import { start, stop, waitFor200, wrk } from './bench-lib.js';
import { freePort } from './free-port.js';

/**
 * The database rows of `npm run bench`: the notes API on the real Postgres
 * (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local server), read
 * and write, at two pool sizes. Each run works in a schema of its own.
 */

export interface DbRow {
  route: string;
  poolMax: number;
  rps: number;
  p99Ms: number;
  errors: number;
  socketErrors?: string | undefined;
}

const POOLS = [2, 10];

export async function benchDatabase(): Promise<DbRow[] | string> {
  const url =
    process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const admin = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 3 });
  try {
    await admin`select 1`;
  } catch (error) {
    await admin.end({ timeout: 1 });
    return `no database at the bench URL (${(error as Error).message})`;
  }
  const schema = `bench_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  await admin.unsafe(`create schema ${schema}`);
  const key = randomBytes(48).toString('base64');
  const now = Math.floor(Date.now() / 1000);
  const token = await sign({ sub: 'bench', iat: now, exp: now + 3600 }, key, 'HS256');
  const schemaUrl = new URL(url);
  schemaUrl.searchParams.set('search_path', schema);
  mkdirSync('.cache/bench', { recursive: true });
  const postScript = '.cache/bench/post-note.lua';
  writeFileSync(
    postScript,
    `wrk.method = "POST"\nwrk.body = '{"title":"bench","body":"a note written by wrk"}'\n` +
      `wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer ${token}"\n`,
  );

  const rows: DbRow[] = [];
  try {
    for (const poolMax of POOLS) {
      const port = await freePort();
      const child = start(
        {
          name: `runway, pool ${poolMax}`,
          file: 'dist/server.js',
          env: {
            LOG_LEVEL: 'warn',
            DATABASE_URL: schemaUrl.href,
            MIGRATE_ON_START: 'true',
            JWT_SIGNING_KEY: key,
            DB_POOL_MAX: String(poolMax),
          },
        },
        port,
      );
      try {
        await waitFor200(port, '/readyz', 15_000);
        const created = await fetch(`http://127.0.0.1:${port}/v1/notes`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ title: 'read me', body: 'the note the read benchmark fetches' }),
        });
        const { id } = (await created.json()) as { id: string };
        const auth = ['-H', `Authorization: Bearer ${token}`];
        const read = wrk(port, `/v1/notes/${id}`, undefined, auth);
        rows.push({ route: 'GET /v1/notes/:id', poolMax, ...read });
        const write = wrk(port, '/v1/notes', undefined, ['-s', postScript]);
        rows.push({ route: 'POST /v1/notes', poolMax, ...write });
        for (const line of child.problems) console.log(`server said: ${line}`);
      } finally {
        await stop(child);
      }
    }
  } finally {
    await admin.unsafe(`drop schema ${schema} cascade`);
    await admin.end({ timeout: 1 });
  }
  return rows;
}
