import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { build } from 'esbuild';
import { entryStdin } from '../src/build/bundle.js';
import { bundleOptions } from '../src/build/bundle-options.js';
import { barChart } from './bench-chart.js';
import { benchDatabase } from './bench-db.js';
import { benchInstructions, type InstructionRow, valgrindMissing } from './bench-instructions.js';
import {
  cpuTicks,
  DURATION_S,
  get,
  type Program,
  quantile,
  rssMb,
  start,
  stop,
  waitFor200,
  wrk,
  wrkAsync,
} from './bench-lib.js';
import { benchOverload, guardCost, guardNanoseconds, OVERLOAD_DELAY_MS } from './bench-overload.js';
import { benchProfiles, type ProfileRow } from './bench-profile.js';
import { benchStreams, type StreamRow } from './bench-streams.js';
import { benchWebSockets, type SocketRow } from './bench-websockets.js';
import { freePort } from './free-port.js';
import { ensureNode24 } from './node24.js';
import { runtime } from './runtimes.js';

/**
 * `npm run bench`: runway against the servers a user would run instead, in
 * one run on one machine with one load generator (wrk):
 *   bare node:http (the floor), Hono's serve() from node_modules (what a user
 *   starts with), Fastify 5 with runway's timeouts, body limit and
 *   close-with-grace (what a user would pick instead), and runway's bundle.
 * Prints tables with ratios, writes JSON to bench/results/, the chart to
 * bench/chart.svg and the tables into docs/benchmarks.md between the bench markers.
 * Every loop is bounded; traffic goes to 127.0.0.1 only.
 * Knobs: BENCH_SPAWNS (cold starts per program, default 21), BENCH_DURATION_S
 * (wrk seconds, default 5), BENCH_ROUNDS (runs per row, median kept, default
 * 3), BENCH_ONLY (comma list of sections: startup, throughput, drain,
 * overload, guards, runtimes, notes, streams, websockets, instructions, profile), BENCH_OVERLOAD_DELAY_MS (the shedding bound
 * of the overload rows, default 50), BENCH_DATABASE_URL (else TEST_DATABASE_URL,
 * else the local server).
 */

const SPAWNS = Number(process.env.BENCH_SPAWNS ?? 21);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ONLY = process.env.BENCH_ONLY?.split(',');
const runs = (section: string) => !ONLY || ONLY.includes(section);
const DB_URL =
  process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const BUNDLE = 'dist/server.js';
/** The page whose tables a full run rewrites, between its bench markers. */
const BENCH_PAGE = 'docs/benchmarks.md';
const RUNWAY_APP = '.cache/bench/runway-app.mjs';
const RUNWAY_APP_NAMED = '.cache/bench/runway-app-named.mjs';
const UNBUNDLED = '.cache/bench/unbundled.mjs';

type PeerKey = 'bare' | 'hono' | 'fastify' | 'runway';
const peerNames: Record<PeerKey, string> = {
  bare: 'bare node:http',
  hono: 'Hono serve()',
  fastify: 'Fastify 5',
  runway: 'runway',
};
const peerFiles: Record<PeerKey, string> = {
  bare: 'bench/fixtures/bare-node-http.mjs',
  hono: 'bench/fixtures/hono-serve.mjs',
  fastify: 'bench/fixtures/fastify.mjs',
  runway: RUNWAY_APP,
};
const peers = Object.keys(peerNames) as PeerKey[];
const quiet = { LOG_LEVEL: 'warn' };

if (spawnSync('wrk', ['--version']).error) {
  console.error('wrk is needed for the throughput rows: apt-get install -y wrk');
  process.exit(1);
}
execFileSync(process.execPath, ['scripts/run.mjs', 'scripts/build.ts'], { stdio: 'inherit' });
// The peers' routes on runway, bundled exactly as dist/server.js is.
await build({
  ...bundleOptions,
  conditions: ['runway-source'],
  entryPoints: ['bench/fixtures/runway-app.ts'],
  outfile: RUNWAY_APP,
  minify: true,
});
await build({
  ...bundleOptions,
  conditions: ['runway-source'],
  entryPoints: ['bench/fixtures/runway-app.ts'],
  outfile: RUNWAY_APP_NAMED,
});
// The same app unbundled: our sources compiled alone, every dependency loaded
// from node_modules as a plain `node` run would. What the bundle saves.
await build({
  ...bundleOptions,
  conditions: ['runway-source'],
  stdin: entryStdin('service/server.ts'),
  outfile: UNBUNDLED,
  // Every dependency external, runway itself compiled in (it is this repository's source, not a package here).
  plugins: [
    ...bundleOptions.plugins,
    {
      name: 'external-packages-but-runway',
      setup(b) {
        b.onResolve({ filter: /^[^./]/ }, (args) =>
          /^runway(\/|$)/.test(args.path) ? undefined : { path: args.path, external: true },
        );
      },
    },
  ],
});

async function reachable(url: string): Promise<boolean> {
  const { default: postgres } = await import('postgres');
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}
const databaseUp = await reachable(DB_URL);
const dbEnv: Record<string, string> = databaseUp ? { DATABASE_URL: DB_URL } : {};

// ---- startup: cold start to the first 200, alternating programs so noise hits all alike
async function coldStart(program: Program, path: string, node?: string): Promise<number> {
  const port = await freePort();
  const startedAt = performance.now();
  const child = start(program, port, node);
  await waitFor200(port, path, 10_000);
  const ms = performance.now() - startedAt;
  await stop(child);
  return ms;
}

const NODE24 = ensureNode24();
const coldPrograms: Record<PeerKey, Program> = {
  bare: { name: 'bare', file: peerFiles.bare },
  hono: { name: 'hono', file: peerFiles.hono },
  fastify: { name: 'fastify', file: peerFiles.fastify },
  // The shipped artifact itself.
  runway: { name: 'runway', file: BUNDLE, env: quiet },
};
const cold: Record<string, number[]> = {};
if (runs('startup')) {
  const cases = [
    ...peers.map((peer) => ({
      name: `node20 ${peer}`,
      program: coldPrograms[peer],
      node: undefined as string | undefined,
    })),
    ...peers.map((peer) => ({ name: `node24 ${peer}`, program: coldPrograms[peer], node: NODE24 })),
    { name: 'node20 unbundled', program: { name: 'unbundled', file: UNBUNDLED, env: quiet }, node: undefined },
  ];
  for (const c of cases) cold[c.name] = [];
  for (let i = 0; i < SPAWNS; i++) {
    for (const c of cases) cold[c.name]?.push(await coldStart(c.program, '/healthz', c.node));
  }
}

// ---- throughput: req/s and p99 per route, idle RSS and RSS under load
interface Loaded {
  idleRssMb: number;
  peakRssMb: number;
  rps: number;
  p99Ms: number;
  /** The server's utime + stime over the wrk run (/proc/PID/stat) per request served, in µs. */
  cpuUsPerRequest: number;
  errors: number;
}

// The throughput rows run on the image's Node (24), every peer alike; BENCH_NODE=20 runs them on this Node 20.
const THROUGHPUT_NODE = process.env.BENCH_NODE === '20' ? process.execPath : NODE24;

async function loaded(program: Program, path: string): Promise<Loaded> {
  const port = await freePort();
  const child = start(program, port, THROUGHPUT_NODE);
  try {
    await waitFor200(port, '/healthz', 10_000);
    for (let i = 0; i < 10; i++) await get(port, path);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const idleRssMb = rssMb(child.pid as number);
    wrk(port, path, 1); // warm-up, discarded
    let peakRssMb = idleRssMb;
    const poll = setInterval(() => {
      peakRssMb = Math.max(peakRssMb, rssMb(child.pid as number));
    }, 100);
    const ticksBefore = cpuTicks(child.pid as number);
    const result = await wrkAsync(port, path, DURATION_S);
    // Clock ticks are 10 ms: a 5 s run of thousands of requests a second is far above that grain.
    const cpuUsPerRequest = ((cpuTicks(child.pid as number) - ticksBefore) * 10_000) / Math.max(1, result.requests);
    clearInterval(poll);
    if (result.errors > 0) {
      console.log(`${program.name} ${path}: ${result.errors} non-2xx answers`);
      for (const line of child.problems) console.log(`server said: ${line}`);
    }
    return { idleRssMb, peakRssMb, cpuUsPerRequest, ...result };
  } finally {
    await stop(child);
  }
}

const median = (list: Loaded[], key: keyof Loaded) =>
  quantile(
    list.map((r) => r[key]),
    0.5,
  );

type Case = { key: string; program: Program; path: string };
const throughputCases: Case[] = [];
for (const path of ['/healthz', '/json', ...(databaseUp ? ['/db'] : [])]) {
  for (const peer of peers) {
    throughputCases.push({
      key: `${peer} ${path}`,
      program: { name: peerNames[peer], file: peerFiles[peer], env: { ...quiet, ...dbEnv } },
      path,
    });
  }
  if (path === '/db') continue;
  // Access logs on, read through a pipe as Cloud Run and Kubernetes read stdout.
  for (const peer of ['fastify', 'runway'] as const) {
    throughputCases.push({
      key: `${peer} ${path} logged`,
      program: { name: `${peerNames[peer]}, access log on`, file: peerFiles[peer], env: { LOG_LEVEL: 'info' } },
      path,
    });
  }
}
const measured: Record<string, Loaded> = {};
if (runs('throughput')) {
  const results: Record<string, Loaded[]> = Object.fromEntries(throughputCases.map((c) => [c.key, []]));
  // Rounds alternate between the cases, and the median round is kept: this VM is noisy.
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of throughputCases) results[c.key]?.push(await loaded(c.program, c.path));
  }
  for (const [key, list] of Object.entries(results)) {
    measured[key] = {
      idleRssMb: median(list, 'idleRssMb'),
      peakRssMb: median(list, 'peakRssMb'),
      rps: median(list, 'rps'),
      p99Ms: median(list, 'p99Ms'),
      cpuUsPerRequest: median(list, 'cpuUsPerRequest'),
      errors: list.reduce((sum, r) => sum + r.errors, 0),
    };
  }
}

// ---- drain: SIGTERM to exit with nothing in flight
async function drainMs(program: Program): Promise<number> {
  const port = await freePort();
  const child = start(program, port);
  await waitFor200(port, '/healthz', 10_000);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const startedAt = performance.now();
  child.kill('SIGTERM');
  await exited;
  return performance.now() - startedAt;
}
const drain: Record<string, number> = {};
if (runs('drain')) {
  for (const peer of peers) {
    const program = { ...coldPrograms[peer], env: { ...quiet, ...dbEnv } };
    drain[peer] = quantile(await Promise.all([0, 1, 2, 3, 4].map(() => drainMs(program))), 0.5);
  }
}

const overload = runs('overload') ? await benchOverload(RUNWAY_APP) : [];
const guardNs = runs('guards') ? await guardNanoseconds() : Number.NaN;
const guards = runs('guards')
  ? {
      healthz: await guardCost(RUNWAY_APP, '/healthz', Math.max(ROUNDS, 5)),
      json: await guardCost(RUNWAY_APP, '/json', Math.max(ROUNDS, 5)),
    }
  : undefined;
// ---- runtimes: the same runway bundle on Node, Bun and Deno
interface RuntimeRow {
  runtime: string;
  coldMs: number;
  idleRssMb: number;
  healthzRps: number;
  jsonRps: number;
  peakRssMb: number;
}
const runtimeRows: RuntimeRow[] = [];
if (runs('runtimes')) {
  const all = (['node', 'bun', 'deno'] as const).map((name) => {
    const on = runtime(name);
    return { name, program: { name, file: RUNWAY_APP, env: quiet, command: on.command } as Program };
  });
  const colds: Record<string, number[]> = Object.fromEntries(all.map((r) => [r.name, []]));
  for (let i = 0; i < SPAWNS; i++) {
    for (const r of all) colds[r.name]?.push(await coldStart(r.program, '/healthz'));
  }
  for (const r of all) {
    const healthz: Loaded[] = [];
    const json: Loaded[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      healthz.push(await loaded(r.program, '/healthz'));
      json.push(await loaded(r.program, '/json'));
    }
    runtimeRows.push({
      runtime: r.name,
      coldMs: quantile(colds[r.name] ?? [], 0.5),
      idleRssMb: median(healthz, 'idleRssMb'),
      healthzRps: median(healthz, 'rps'),
      jsonRps: median(json, 'rps'),
      peakRssMb: median(json, 'peakRssMb'),
    });
  }
}

const notes = runs('notes') ? await benchDatabase() : 'not run (BENCH_ONLY)';

// ---- instructions: user-space instructions per GET /json under callgrind, the count this VM's noise does not move
let instructions: InstructionRow[] = [];
if (runs('instructions')) {
  if (valgrindMissing()) console.log('instructions: not run, valgrind is missing (apt-get install -y valgrind)');
  else
    instructions = await benchInstructions(
      peers.map((peer) => ({ name: peerNames[peer], file: peerFiles[peer], env: { ...quiet, ...dbEnv } })),
      '/json',
      THROUGHPUT_NODE,
    );
}

// ---- tables
const fmt = (n: number | undefined) =>
  n === undefined || Number.isNaN(n) ? '-' : n >= 1000 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b) ? '-' : `${(a / b).toFixed(2)}x`;

interface PeerRow {
  metric: string;
  values: Partial<Record<PeerKey, number>>;
  target?: string;
  pass?: boolean;
}
/** Runway at most (`'<='`) or at least (`'>='`) `bound` times `peer`'s value. */
type Target = [op: '<=' | '>=', bound: number, peer: PeerKey];
/** A row with its target and whether this run met it. */
const against = (metric: string, values: Partial<Record<PeerKey, number>>, ...[op, bound, peer]: Target): PeerRow => {
  const ours = values.runway;
  const theirs = values[peer];
  const known = ours !== undefined && theirs !== undefined && !Number.isNaN(ours) && !Number.isNaN(theirs);
  return {
    metric,
    values,
    target: `${op} ${bound}x ${peerNames[peer]}`,
    pass: known ? (op === '<=' ? ours <= bound * theirs : ours >= bound * theirs) : false,
  };
};
const coldMedian = (node: string, peer: PeerKey) => quantile(cold[`${node} ${peer}`] ?? [], 0.5);
const coldP90 = (node: string, peer: PeerKey) => quantile(cold[`${node} ${peer}`] ?? [], 0.9);
const perPeer = (pick: (peer: PeerKey) => number | undefined) =>
  Object.fromEntries(peers.map((peer) => [peer, pick(peer)])) as Partial<Record<PeerKey, number>>;
const peerRows: PeerRow[] = [];
if (runs('startup')) {
  // Node 24 is the image's runtime and has the target; Node 20 is past end of life, reported only.
  for (const node of ['node24', 'node20']) {
    const label = node === 'node20' ? 'Node 20' : 'Node 24';
    const values = perPeer((peer) => coldMedian(node, peer));
    peerRows.push(
      node === 'node24'
        ? against(`${label}: cold start to first 200, median (ms)`, values, '<=', 1.15, 'bare')
        : { metric: `${label}: cold start to first 200, median (ms)`, values, target: '(report)' },
    );
    peerRows.push({ metric: `${label}: cold start, p90 (ms)`, values: perPeer((peer) => coldP90(node, peer)) });
  }
  peerRows.push({
    metric: 'Node 20: runway unbundled from node_modules, cold start median (ms)',
    values: { runway: quantile(cold['node20 unbundled'] ?? [], 0.5) },
    target: '(report: what the bundle saves)',
  });
}
if (runs('throughput')) {
  const m = (key: string) => measured[key];
  const idle = perPeer((peer) => m(`${peer} /healthz`)?.idleRssMb);
  peerRows.push({
    metric: 'idle RSS (MB)',
    values: idle,
    target: '<= 55 MB',
    pass: (idle.runway ?? Number.POSITIVE_INFINITY) <= 55,
  });
  // The targets of the hot path (docs/benchmarks.md): against plain serve() for the app routes, Fastify for the rest.
  const targets: Record<string, { rps?: Target; p99?: Target; cpu?: Target }> = {
    '/healthz': { rps: ['>=', 1.0, 'fastify'] },
    '/json': { rps: ['>=', 0.85, 'hono'], p99: ['<=', 1.2, 'hono'], cpu: ['<=', 1.25, 'hono'] },
    '/db': { rps: ['>=', 0.95, 'hono'], p99: ['<=', 1.2, 'fastify'] },
  };
  const row = (metric: string, values: Partial<Record<PeerKey, number>>, t?: Target) =>
    t ? against(metric, values, ...t) : { metric, values };
  for (const path of ['/healthz', '/json', '/db']) {
    if (!m(`runway ${path}`)) continue;
    const t = targets[path] ?? {};
    peerRows.push(
      row(
        `GET ${path} req/s`,
        perPeer((peer) => m(`${peer} ${path}`)?.rps),
        t.rps,
      ),
    );
    peerRows.push(
      row(
        `GET ${path} p99 (ms)`,
        perPeer((peer) => m(`${peer} ${path}`)?.p99Ms),
        t.p99,
      ),
    );
    // Where wrk and the server share the two cores req/s saturates; the server's CPU per request does not.
    peerRows.push(
      row(
        `GET ${path} server CPU per request (µs)`,
        perPeer((peer) => m(`${peer} ${path}`)?.cpuUsPerRequest),
        t.cpu,
      ),
    );
    const fastifyLogged = m(`fastify ${path} logged`);
    const runwayLogged = m(`runway ${path} logged`);
    if (runwayLogged && fastifyLogged) {
      peerRows.push(
        against(
          `GET ${path} req/s, access log on`,
          { fastify: fastifyLogged.rps, runway: runwayLogged.rps },
          '>=',
          path === '/json' ? 1.3 : 1.0,
          'fastify',
        ),
      );
      // What the access line costs: the same route's CPU per request with the log on, less with it off
      // (not on /healthz: runway writes no access line for probes unless LOG_HEALTH_CHECKS is on).
      if (path === '/json')
        peerRows.push({
          metric: `GET ${path}: the access line, server CPU per request (µs)`,
          values: {
            fastify: fastifyLogged.cpuUsPerRequest - (m(`fastify ${path}`)?.cpuUsPerRequest ?? Number.NaN),
            runway: runwayLogged.cpuUsPerRequest - (m(`runway ${path}`)?.cpuUsPerRequest ?? Number.NaN),
          },
          target: '(report)',
        });
    }
  }
  peerRows.push({ metric: 'RSS under load, GET /json (MB)', values: perPeer((peer) => m(`${peer} /json`)?.peakRssMb) });
}
if (runs('drain')) {
  peerRows.push({
    metric: 'SIGTERM to exit, nothing in flight (ms)',
    values: perPeer((peer) => drain[peer]),
    target: '<= SHUTDOWN_DELAY_MS (0) + 50 ms',
    pass: (drain.runway ?? Number.POSITIVE_INFINITY) <= 50,
  });
}

const peerTable =
  peerRows.length === 0
    ? ''
    : [
        `| metric | ${peers.map((peer) => peerNames[peer]).join(' | ')} | runway / bare | runway / Hono serve() | runway / Fastify | target | met |`,
        `|---|${peers.map(() => '---').join('|')}|---|---|---|---|---|`,
        ...peerRows.map((row) => {
          const met = row.pass === undefined ? '' : row.pass ? 'yes' : 'NO';
          return `| ${row.metric} | ${peers.map((peer) => fmt(row.values[peer])).join(' | ')} | ${ratio(
            row.values.runway,
            row.values.bare,
          )} | ${ratio(row.values.runway, row.values.hono)} | ${ratio(row.values.runway, row.values.fastify)} | ${row.target ?? ''} | ${met} |`;
        }),
      ].join('\n');

const overloadTable = overload.length
  ? [
      `Overload: GET /work (~1 ms CPU) under wrk -c256 for ${DURATION_S}s, sampler at 50 req/s; shedding at ${OVERLOAD_DELAY_MS} ms of loop delay.`,
      '',
      '| server | p99 accepted, normal load (ms) | p99 accepted, overload (ms) | ratio | target | shed % | answers/s | 2xx/s | idle RSS (MB) | peak RSS (MB) |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...overload.map(
        (row) =>
          `| ${row.server} | ${fmt(row.normalP99Ms)} | ${fmt(row.acceptedP99Ms)} | ${row.acceptedRatio.toFixed(1)}x | <= 3x | ${row.shedPercent.toFixed(1)} | ${fmt(row.rps)} | ${fmt(row.goodput)} | ${fmt(row.idleRssMb)} | ${fmt(row.peakRssMb)} |`,
      ),
    ].join('\n')
  : '';

const guardTable = guards
  ? [
      '| shedding + rate limiter on the hot path | req/s off | req/s on | on / off | server CPU per request off / on (µs) |',
      '|---|---|---|---|---|',
      ...Object.entries(guards).map(
        ([route, g]) =>
          `| GET /${route} | ${fmt(g.off)} | ${fmt(g.on)} | ${ratio(g.on, g.off)} | ${fmt(g.cpuUsOff)} / ${fmt(g.cpuUsOn)} |`,
      ),
      '',
      `The guards' own work, timed in-process over a million requests: ${guardNs.toFixed(0)} ns per request, ` +
        `${((100 * guardNs) / 1000 / guards.healthz.cpuUsOff).toFixed(2)}% of the server CPU of one /healthz request ` +
        `(target < 5%: ${guardNs / 1000 < 0.05 * guards.healthz.cpuUsOff ? 'met' : 'NOT met'}). ` +
        '/healthz itself never passes through them; the wrk rows above move by more than 5% between identical runs.',
    ].join('\n')
  : '';

const runtimeTable = runtimeRows.length
  ? [
      '| runway bundle on | cold start median (ms) | idle RSS (MB) | GET /healthz req/s | GET /json req/s | RSS under load (MB) |',
      '|---|---|---|---|---|---|',
      ...runtimeRows.map(
        (row) =>
          `| ${row.runtime} | ${fmt(row.coldMs)} | ${fmt(row.idleRssMb)} | ${fmt(row.healthzRps)} | ${fmt(row.jsonRps)} | ${fmt(row.peakRssMb)} |`,
      ),
    ].join('\n')
  : '';

const notesTable =
  typeof notes === 'string'
    ? `notes API rows skipped: ${notes}`
    : [
        '| notes API (real Postgres) | DB_POOL_MAX | req/s | p99 (ms) | non-2xx | socket errors |',
        '|---|---|---|---|---|---|',
        ...notes.map(
          (row) =>
            `| ${row.route} | ${row.poolMax} | ${fmt(row.rps)} | ${fmt(row.p99Ms)} | ${row.errors} | ${row.socketErrors ?? 'none'} |`,
        ),
      ].join('\n');

// ---- streams: server-sent events to 1 000 subscribers, Hono's streamSSE on plain serve() against runway's helper
// Shedding off for runway: 1 000 subscribers arriving at once hold the loop past MAX_EVENT_LOOP_DELAY_MS,
// and the ones refused (by design: 503, retry) would wait out the bound instead of being counted.
const streamEnv = { ...quiet, MAX_EVENT_LOOP_DELAY_MS: '0' };
const streams: StreamRow[] = runs('streams')
  ? await benchStreams(
      (['hono', 'runway'] as const).map((peer) => ({ name: peerNames[peer], file: peerFiles[peer], env: streamEnv })),
    )
  : [];
const streamsTable = streams.length
  ? [
      `Streams: ${streams[0]?.subscribers} subscribers each reading GET /sse (${(streams[0]?.events ?? 0) / (streams[0]?.subscribers ?? 1)} events of ~100 bytes, sent as fast as they are taken).`,
      '',
      '| server | events/s | server CPU per event (µs) | seconds | peak RSS (MB) | subscribers cut short |',
      '|---|---|---|---|---|---|',
      ...streams.map(
        (row) =>
          `| ${row.server} | ${fmt(row.eventsPerSecond)} | ${row.cpuUsPerEvent.toFixed(1)} | ${row.seconds.toFixed(2)} | ${fmt(row.peakRssMb)} | ${row.incomplete} |`,
      ),
      streams.length === 2
        ? `\nrunway / Hono serve(): ${ratio(streams[1]?.eventsPerSecond, streams[0]?.eventsPerSecond)} events/s, ${ratio(streams[1]?.cpuUsPerEvent, streams[0]?.cpuUsPerEvent)} CPU per event.`
        : '',
    ].join('\n')
  : '';

// ---- websockets: echo over 200 sockets, @hono/node-server's upgradeWebSocket with ws against runway's
const sockets: SocketRow[] = runs('websockets')
  ? await benchWebSockets(
      (['hono', 'runway'] as const).map((peer) => ({ name: peerNames[peer], file: peerFiles[peer], env: quiet })),
    )
  : [];
const socketsTable = sockets.length
  ? [
      `WebSockets: ${sockets[0]?.clients} sockets each echoing ${(sockets[0]?.messages ?? 0) / (sockets[0]?.clients ?? 1)} messages of 100 bytes in turn; then ${sockets[0]?.idleSockets} idle sockets.`,
      '',
      '| server | messages/s | server CPU per message (µs) | seconds | peak RSS (MB) | idle RSS per socket (KiB) | clients cut short |',
      '|---|---|---|---|---|---|---|',
      ...sockets.map(
        (row) =>
          `| ${row.server} | ${fmt(row.messagesPerSecond)} | ${row.cpuUsPerMessage.toFixed(1)} | ${row.seconds.toFixed(2)} | ${fmt(row.peakRssMb)} | ${row.idleKbPerSocket.toFixed(1)} | ${row.failed} |`,
      ),
      sockets.length === 2
        ? `\nrunway / @hono/node-server: ${ratio(sockets[1]?.messagesPerSecond, sockets[0]?.messagesPerSecond)} messages/s, ${ratio(sockets[1]?.cpuUsPerMessage, sockets[0]?.cpuUsPerMessage)} CPU per message, ${ratio(sockets[1]?.idleKbPerSocket, sockets[0]?.idleKbPerSocket)} memory per idle socket.`
        : '',
    ].join('\n')
  : '';

const instructionTable = instructions.length
  ? (() => {
      const median = (row: InstructionRow) => quantile(row.perRequest, 0.5);
      const hono = instructions.find((row) => row.program === peerNames.hono);
      return [
        `Instructions per GET /json request under callgrind (${instructions[0]?.perRequest.length} runs each, alternating; user space, every thread; event-loop-delay shedding off: scripts/bench-instructions.ts):`,
        '',
        '| program | per request, each run | median | vs Hono serve() |',
        '|---|---|---|---|',
        ...instructions.map(
          (row) =>
            `| ${row.program} | ${row.perRequest.map(fmt).join(', ')} | ${fmt(median(row))} | ${hono ? ratio(median(row), median(hono)) : '-'} |`,
        ),
      ].join('\n');
    })()
  : '';

// ---- profile: where a request's CPU goes, runway against Hono's serve() on GET /json (flame graphs as SVG)
mkdirSync('bench/results', { recursive: true });
const profiles: ProfileRow[] = runs('profile')
  ? await benchProfiles(
      (['hono', 'runway'] as const).map((peer) => ({
        name: peerNames[peer],
        // runway's bundle unminified, so that its frames carry their names (its code is the same).
        file: peer === 'runway' ? RUNWAY_APP_NAMED : peerFiles[peer],
        env: quiet,
      })),
      '/json',
      'bench/results',
      THROUGHPUT_NODE,
    )
  : [];
const profileTable = profiles.length
  ? [
      `Profile: GET /json under wrk with --cpu-prof on ${THROUGHPUT_NODE === NODE24 ? 'Node 24' : 'Node 20'}; top self time, in % of the busy (not idle) samples.`,
      ...profiles.flatMap((row) => [
        '',
        `${row.program} (flame graph: ${row.svg})`,
        '',
        '| self % | function |',
        '|---|---|',
        ...row.top.map((entry) => `| ${entry.percent.toFixed(1)} | \`${entry.fn}\` |`),
      ]),
    ].join('\n')
  : '';

const meta = {
  date: new Date().toISOString(),
  node: process.version,
  node24: execFileSync(NODE24, ['--version'], { encoding: 'utf8' }).trim(),
  cpus: (await import('node:os')).cpus().length,
  spawns: SPAWNS,
  wrk: `-t1 -c64 -d${DURATION_S}s, median of ${ROUNDS}`,
  sections: ONLY ?? 'all',
  throughputNode: THROUGHPUT_NODE === NODE24 ? 'node24' : 'node20',
};
const header = `node ${meta.node} and ${meta.node24} (throughput rows on ${meta.throughputNode === 'node24' ? meta.node24 : meta.node}), ${meta.cpus} cores, ${SPAWNS} spawns per program, wrk ${meta.wrk}, ${meta.date.slice(0, 10)}`;
const report = [
  header,
  peerTable,
  overloadTable,
  guardTable,
  runtimeTable,
  notesTable,
  streamsTable,
  socketsTable,
  instructionTable,
  profileTable,
]
  .filter(Boolean)
  .join('\n\n');
console.log(`\n${report}`);

const file = `bench/results/${meta.date.replace(/[:.]/g, '-')}.json`;
const raw = `${JSON.stringify({ ...meta, peerRows, cold, measured, drain, overload, guards, guardNs, runtimeRows, notes, streams, sockets, instructions, profiles }, null, 2)}\n`;
writeFileSync(file, raw);
console.log(`\nwritten to ${file}`);

// A full run refreshes the chart and the tables of docs/benchmarks.md; a partial one leaves them.
if (!ONLY) {
  const routes = ['/healthz', '/json', ...(databaseUp ? ['/db'] : [])];
  // The published run: its raw numbers and flame graphs are committed beside the chart (bench/results/ is not).
  writeFileSync('bench/published.json', raw);
  for (const row of profiles) copyFileSync(row.svg, join('bench', basename(row.svg)));
  const groups = (value: (result: Loaded | undefined) => number) =>
    routes.map((route) => ({
      label: `GET ${route}`,
      bars: peers.map((peer) => ({ label: peerNames[peer], value: value(measured[`${peer} ${route}`]) })),
    }));
  writeFileSync(
    'bench/chart.svg',
    barChart({
      title: `req/s, wrk -c64, ${meta.cpus} cores (${meta.date.slice(0, 10)})`,
      groups: groups((r) => r?.rps ?? 0),
    }),
  );
  writeFileSync(
    'bench/chart-cpu.svg',
    barChart({
      title: `server CPU per request (µs, lower is better), same run (${meta.date.slice(0, 10)})`,
      groups: groups((r) => r?.cpuUsPerRequest ?? 0),
    }),
  );
  const page = readFileSync(BENCH_PAGE, 'utf8');
  const startMark = page.indexOf('<!-- bench:start -->');
  const endMark = page.indexOf('<!-- bench:end -->');
  if (startMark !== -1 && endMark !== -1) {
    writeFileSync(BENCH_PAGE, `${page.slice(0, startMark)}<!-- bench:start -->\n${report}\n${page.slice(endMark)}`);
    console.log(`${BENCH_PAGE} and bench/chart.svg updated; run \`npm run format\` before committing`);
  } else {
    console.log(`bench/chart.svg updated; ${BENCH_PAGE} has no <!-- bench:start --> / <!-- bench:end --> markers`);
  }
}
