import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { benchDatabase } from './bench-db.js';
import { DURATION_S, get, type Program, quantile, start, stop, waitFor200, wrk } from './bench-lib.js';
import { bundleOptions } from './bundle-options.js';
import { freePort } from './free-port.js';
import { ensureNode24 } from './node24.js';

/**
 * `npm run bench`: runway's bundle against bare node:http, measured in the
 * same run on the same machine. Prints a table with ratios and writes JSON to
 * bench/results/. Every loop is bounded; traffic goes to 127.0.0.1 only.
 * Knobs: BENCH_SPAWNS (cold starts per program, default 21),
 * BENCH_DURATION_S (wrk seconds per run, default 5), BENCH_ROUNDS (runs per
 * row, median kept, default 3).
 */

const SPAWNS = Number(process.env.BENCH_SPAWNS ?? 21);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
type Measured = { idleRssMb: number; rps: number; p99Ms: number };
const BUNDLE = 'dist/server.js';
const BARE = 'bench/fixtures/bare-node-http.mjs';

const programs: Program[] = [
  { name: 'bare node:http', file: BARE },
  { name: 'runway bundle', file: BUNDLE, env: { LOG_LEVEL: 'warn' } },
  // Access logs on, read through a pipe as Cloud Run and Kubernetes read stdout.
  { name: 'runway bundle, access log on', file: BUNDLE, env: { LOG_LEVEL: 'info' } },
];

async function coldStart(program: Program, path: string, node?: string): Promise<number> {
  const port = await freePort();
  const startedAt = performance.now();
  const child = start(program, port, node);
  await waitFor200(port, path, 10_000);
  const ms = performance.now() - startedAt;
  await stop(child);
  return ms;
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

async function loaded(program: Program, path: string) {
  const port = await freePort();
  const child = start(program, port);
  await waitFor200(port, '/healthz', 10_000);
  // Idle RSS: after a handful of requests, before any load.
  for (let i = 0; i < 10; i++) await get(port, path);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const idleRssMb = rssMb(child.pid as number);
  wrk(port, path, 1); // warm-up, discarded
  const result = wrk(port, path);
  if (result.errors > 0) {
    console.log(`${program.name} ${path}: ${result.errors} non-2xx answers`);
    for (const line of child.problems) console.log(`server said: ${line}`);
  }
  await stop(child);
  return { idleRssMb, ...result };
}

/** Rounds alternate between the cases, and the median round is kept: this VM is noisy. */
async function rounds(cases: { program: Program; path: string }[]) {
  const results = cases.map(() => [] as Awaited<ReturnType<typeof loaded>>[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of cases.entries()) results[i]?.push(await loaded(c.program, c.path));
  }
  return results.map((list) => ({
    idleRssMb: quantile(
      list.map((r) => r.idleRssMb),
      0.5,
    ),
    rps: quantile(
      list.map((r) => r.rps),
      0.5,
    ),
    p99Ms: quantile(
      list.map((r) => r.p99Ms),
      0.5,
    ),
  }));
}

function configFailureMs(): number {
  const startedAt = performance.now();
  const result = spawnSync(process.execPath, [BUNDLE], {
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', PORT: 'not-a-port' },
    stdio: 'ignore',
    timeout: 10_000,
  });
  if (result.status === 0) throw new Error('bundle started with an invalid config');
  return performance.now() - startedAt;
}

if (spawnSync('wrk', ['--version']).error) {
  console.error('wrk is needed for the throughput rows: apt-get install -y wrk');
  process.exit(1);
}
execFileSync(process.execPath, ['scripts/run.mjs', 'scripts/build.ts'], { stdio: 'inherit' });
// The same app unbundled: our sources compiled alone, every dependency loaded
// from node_modules as a plain `node` run would. What the bundle saves.
const UNBUNDLED = '.cache/bench/unbundled.mjs';
await build({ ...bundleOptions, entryPoints: ['src/server.ts'], outfile: UNBUNDLED, packages: 'external' });

// Cold starts alternate between programs so that machine noise hits both alike.
const NODE24 = ensureNode24();
const coldCases = [
  { name: 'bare /healthz', program: programs[0] as Program, path: '/healthz' },
  { name: 'runway /healthz', program: programs[1] as Program, path: '/healthz' },
  { name: 'runway GET / (app)', program: programs[1] as Program, path: '/' },
  {
    name: 'unbundled /healthz',
    program: { name: 'unbundled', file: UNBUNDLED, env: { LOG_LEVEL: 'warn' } },
    path: '/healthz',
  },
  { name: 'node24 bare /healthz', program: programs[0] as Program, path: '/healthz', node: NODE24 },
  { name: 'node24 runway /healthz', program: programs[1] as Program, path: '/healthz', node: NODE24 },
];
const cold: Record<string, number[]> = Object.fromEntries(coldCases.map((c) => [c.name, [] as number[]]));
for (let i = 0; i < SPAWNS; i++) {
  for (const c of coldCases) cold[c.name]?.push(await coldStart(c.program, c.path, c.node));
}
const [bare, ours, oursApp, oursLogged] = (await rounds([
  { program: programs[0] as Program, path: '/healthz' },
  { program: programs[1] as Program, path: '/healthz' },
  { program: programs[1] as Program, path: '/' },
  { program: programs[2] as Program, path: '/' },
])) as [Measured, Measured, Measured, Measured];
const configFailMs = quantile(
  Array.from({ length: 5 }, () => configFailureMs()),
  0.5,
);

const bareCold = cold['bare /healthz'] ?? [];
const oursCold = cold['runway /healthz'] ?? [];
const appCold = cold['runway GET / (app)'] ?? [];
const bare24 = cold['node24 bare /healthz'] ?? [];
const ours24 = cold['node24 runway /healthz'] ?? [];
const unbundledCold = cold['unbundled /healthz'] ?? [];
const rows = [
  {
    metric: 'Node 20: cold start to first 200 from /healthz, median (ms)',
    bare: quantile(bareCold, 0.5),
    runway: quantile(oursCold, 0.5),
    target: '<= 1.25x',
    pass: quantile(oursCold, 0.5) <= 1.25 * quantile(bareCold, 0.5),
  },
  {
    metric: 'Node 20: cold start to first 200 from /healthz, p90 (ms)',
    bare: quantile(bareCold, 0.9),
    runway: quantile(oursCold, 0.9),
    target: '',
    pass: undefined,
  },
  {
    metric: 'Node 24: cold start to first 200 from /healthz, median (ms)',
    bare: quantile(bare24, 0.5),
    runway: quantile(ours24, 0.5),
    target: '<= 1.25x',
    pass: quantile(ours24, 0.5) <= 1.25 * quantile(bare24, 0.5),
  },
  {
    metric: 'Node 20 cold start: unbundled from node_modules (left) vs the bundle (right), median (ms)',
    bare: quantile(unbundledCold, 0.5),
    runway: quantile(oursCold, 0.5),
    target: '(report)',
    pass: undefined,
  },
  {
    metric: 'Node 20: cold start to first 200 from GET / (app), median (ms)',
    bare: quantile(bareCold, 0.5),
    runway: quantile(appCold, 0.5),
    target: '(report)',
    pass: undefined,
  },
  {
    metric: 'GET /healthz req/s',
    bare: bare.rps,
    runway: ours.rps,
    target: '>= 0.80x',
    pass: ours.rps >= 0.8 * bare.rps,
  },
  { metric: 'GET /healthz p99 (ms)', bare: bare.p99Ms, runway: ours.p99Ms, target: '', pass: undefined },
  {
    metric: 'GET / through Hono, req/s',
    bare: bare.rps,
    runway: oursApp.rps,
    target: '(report)',
    pass: undefined,
  },
  { metric: 'GET / through Hono, p99 (ms)', bare: bare.p99Ms, runway: oursApp.p99Ms, target: '', pass: undefined },
  {
    metric: 'GET / through Hono, access log on, req/s',
    bare: bare.rps,
    runway: oursLogged.rps,
    target: '(report)',
    pass: undefined,
  },
  {
    metric: 'access log cost: req/s with it on / off',
    bare: oursApp.rps,
    runway: oursLogged.rps,
    target: '(report)',
    pass: undefined,
  },
  {
    metric: 'idle RSS (MB)',
    bare: bare.idleRssMb,
    runway: ours.idleRssMb,
    target: '<= 60 MB',
    pass: ours.idleRssMb <= 60,
  },
  {
    metric: 'invalid config to exit (ms)',
    bare: Number.NaN,
    runway: configFailMs,
    target: '<= 1000 ms',
    pass: configFailMs <= 1000,
  },
];

const fmt = (n: number) => (Number.isNaN(n) ? '-' : n >= 1000 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));
const table = [
  `| metric | bare node:http | runway | ratio | target | met |`,
  `|---|---|---|---|---|---|`,
  ...rows.map((row) => {
    const ratio = Number.isNaN(row.bare) ? '-' : `${(row.runway / row.bare).toFixed(2)}x`;
    const met = row.pass === undefined ? '' : row.pass ? 'yes' : 'NO';
    return `| ${row.metric} | ${fmt(row.bare)} | ${fmt(row.runway)} | ${ratio} | ${row.target} | ${met} |`;
  }),
].join('\n');

const database = await benchDatabase();
const dbTable =
  typeof database === 'string'
    ? `database rows skipped: ${database}`
    : [
        '| route (real Postgres) | DB_POOL_MAX | req/s | p99 (ms) | non-2xx |',
        '|---|---|---|---|---|',
        ...database.map(
          (row) => `| ${row.route} | ${row.poolMax} | ${fmt(row.rps)} | ${fmt(row.p99Ms)} | ${row.errors} |`,
        ),
      ].join('\n');

const meta = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: (await import('node:os')).cpus().length,
  spawns: SPAWNS,
  wrk: `-t1 -c64 -d${DURATION_S}s, median of ${ROUNDS}`,
};
console.log(`\nnode ${meta.node}, ${meta.cpus} cores, ${SPAWNS} spawns per program, wrk ${meta.wrk}\n`);
console.log(table);
console.log(`\n${dbTable}`);
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/${meta.date.replace(/[:.]/g, '-')}.json`;
writeFileSync(file, `${JSON.stringify({ ...meta, rows, cold, database }, null, 2)}\n`);
console.log(`\nwritten to ${file}`);
