import { Agent, request } from 'node:http';
import { clientIp, parseTrust } from '../src/runtime/client-ip.js';
import { createLoadShedder } from '../src/runtime/load-shedder.js';
import { createLogger } from '../src/runtime/logger.js';
import { createRateLimiter } from '../src/runtime/rate-limit.js';
import {
  cpuTicks,
  DURATION_S,
  type Program,
  quantile,
  rssMb,
  start,
  stop,
  waitFor200,
  wrk,
  wrkAsync,
} from './bench-lib.js';
import { freePort } from './free-port.js';

/**
 * The overload rows of `npm run bench`. Offered load far above capacity on a
 * CPU-bound route (GET /work, ~1 ms of CPU): wrk with 256 connections, while a
 * sampler sends 50 requests a second and times the ones that are accepted.
 * Same scenario for runway with shedding, runway without, and Fastify with
 * @fastify/under-pressure at the same event-loop threshold.
 * Also the hot-path cost of shedding and the rate limiter: req/s with them on
 * and off.
 */

export const OVERLOAD_DELAY_MS = Number(process.env.BENCH_OVERLOAD_DELAY_MS ?? 50);
const OVERLOAD_CONNECTIONS = 256;
const SAMPLE_EVERY_MS = 20;

export interface OverloadRow {
  server: string;
  normalP99Ms: number;
  acceptedP99Ms: number;
  acceptedRatio: number;
  shedPercent: number;
  sampled: number;
  idleRssMb: number;
  peakRssMb: number;
  rps: number;
  /** 2xx answers per second: the work actually done. */
  goodput: number;
}

/** Open-loop sampler: one request every SAMPLE_EVERY_MS whatever the server does. */
async function sample(port: number, path: string, seconds: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const accepted: number[] = [];
  let refused = 0;
  let failed = 0;
  const pending: Promise<void>[] = [];
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const sentAt = performance.now();
    pending.push(
      new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) accepted.push(performance.now() - sentAt);
            else refused++;
            resolve();
          });
        });
        req.setTimeout(30_000, () => req.destroy());
        req.on('error', () => {
          failed++;
          resolve();
        });
        req.end();
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
  }
  await Promise.all(pending);
  agent.destroy();
  return { p99Ms: quantile(accepted, 0.99), accepted: accepted.length, refused, failed };
}

async function overload(program: Program): Promise<OverloadRow> {
  const port = await freePort();
  const child = start(program, port);
  try {
    await waitFor200(port, '/healthz', 10_000);
    wrk(port, '/work', 1); // warm-up, discarded
    await new Promise((resolve) => setTimeout(resolve, 500));
    const idleRssMb = rssMb(child.pid as number);
    const normal = await sample(port, '/work', 3);
    let peakRssMb = idleRssMb;
    const poll = setInterval(() => {
      peakRssMb = Math.max(peakRssMb, rssMb(child.pid as number));
    }, 100);
    const [flood, sampled] = await Promise.all([
      wrkAsync(port, '/work', DURATION_S, ['-c', String(OVERLOAD_CONNECTIONS), '--timeout', '30s']),
      sample(port, '/work', DURATION_S),
    ]);
    clearInterval(poll);
    return {
      server: program.name,
      normalP99Ms: normal.p99Ms,
      acceptedP99Ms: sampled.p99Ms,
      acceptedRatio: sampled.p99Ms / normal.p99Ms,
      shedPercent: (100 * flood.errors) / Math.max(1, flood.requests),
      sampled: sampled.accepted + sampled.refused + sampled.failed,
      idleRssMb,
      peakRssMb,
      rps: flood.rps,
      goodput: (flood.requests - flood.errors) / DURATION_S,
    };
  } finally {
    await stop(child);
  }
}

export async function benchOverload(runwayApp: string) {
  const delay = String(OVERLOAD_DELAY_MS);
  const programs: Program[] = [
    { name: 'runway, shedding on', file: runwayApp, env: { LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: delay } },
    // A tighter bound trades served requests for latency: the same flood at 10 ms.
    {
      name: 'runway, shedding on at 10 ms',
      file: runwayApp,
      env: { LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: '10' },
    },
    {
      name: 'runway, shedding off',
      file: runwayApp,
      env: { LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: '0', MAX_INFLIGHT_REQUESTS: '0' },
    },
    { name: 'fastify + under-pressure', file: 'bench/fixtures/fastify.mjs', env: { MAX_EVENT_LOOP_DELAY_MS: delay } },
  ];
  const rows: OverloadRow[] = [];
  for (const program of programs) rows.push(await overload(program));
  return rows;
}

/** req/s of a route with shedding and the limiter on, and with both off, median of `rounds`. */
export async function guardCost(runwayApp: string, path: string, rounds: number) {
  const on: Program = {
    name: 'guards on',
    file: runwayApp,
    // One client (wrk) under a limit it never reaches: the limiter's work without its refusals.
    env: { LOG_LEVEL: 'warn', RATE_LIMIT_RPS: '1000000', MAX_EVENT_LOOP_DELAY_MS: '500' },
  };
  const off: Program = {
    name: 'guards off',
    file: runwayApp,
    env: { LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: '0', MAX_INFLIGHT_REQUESTS: '0' },
  };
  // Throughput on this VM moves by +-20% between runs whatever the code, so the
  // cost is also read as server CPU per request (utime + stime from /proc, over
  // the whole wrk run), which the load generator's share of the CPU disturbs less.
  const results = { on: [] as number[], off: [] as number[] };
  const cpu = { on: [] as number[], off: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    for (const [key, program] of [
      ['off', off],
      ['on', on],
    ] as const) {
      const port = await freePort();
      const child = start(program, port);
      try {
        await waitFor200(port, '/healthz', 10_000);
        wrk(port, path, 1);
        const before = cpuTicks(child.pid as number);
        const run = wrk(port, path);
        const ticks = cpuTicks(child.pid as number) - before;
        results[key].push(run.rps);
        cpu[key].push((ticks * 10_000) / Math.max(1, run.requests));
      } finally {
        await stop(child);
      }
    }
  }
  return {
    on: quantile(results.on, 0.5),
    off: quantile(results.off, 0.5),
    cpuUsOn: quantile(cpu.on, 0.5),
    cpuUsOff: quantile(cpu.off, 0.5),
  };
}

/**
 * The guards' own work per request, timed in-process over a million calls:
 * what the node layer adds to an admitted request when both are on (the
 * client address walk, the bucket, the in-flight and loop-turn checks).
 * Deterministic where the wrk figures are not.
 */
export async function guardNanoseconds(): Promise<number> {
  const log = createLogger({ level: 'error' });
  const shedder = createLoadShedder({ maxInFlight: 250, maxEventLoopDelayMs: 500, log });
  shedder.start();
  const limiter = createRateLimiter({ rps: 1_000_000, burst: 1_000_000 });
  const trust = parseTrust('loopback');
  const calls = 1_000_000;
  const once = () => {
    const ip = clientIp('127.0.0.1', '203.0.113.7', trust);
    limiter.take(ip);
    shedder.check(10);
  };
  for (let i = 0; i < 100_000; i++) once();
  // Turns of 1000 calls, as a busy loop turn would see them.
  const startedAt = performance.now();
  for (let turn = 0; turn < calls / 1000; turn++) {
    for (let i = 0; i < 1000; i++) once();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const ns = ((performance.now() - startedAt) * 1e6) / calls;
  shedder.stop();
  limiter.stop();
  return ns;
}
