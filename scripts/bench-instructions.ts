import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Program, start, stop, waitFor200 } from './bench-lib.js';
import { freePort } from './free-port.js';

/**
 * Instructions per request (`BENCH_ONLY=instructions`): each program runs
 * under `valgrind --tool=callgrind`, with counting switched on only for a
 * fixed number of GET `path` requests after a warm-up, so start-up and
 * warm-up are left out. Valgrind counts instructions, not seconds: the same
 * program and load give nearly the same count whatever else the machine
 * runs, where the CPU time per request of the throughput rows moved by a
 * third from one run to the next on this 2-core VM (docs/benchmarks.md).
 * The count is of user-space instructions only (the kernel's share of
 * read and write is not in it), and of every thread (V8's compilers too).
 *
 * Valgrind runs the program about 50 times slower, so what runs on a clock
 * rather than per request would be counted about 50 times as often per
 * request as at full speed, and the slowed loop trips runway's event-loop
 * delay shedding (its 503s cost less than answers: 132 of 5 000 in a first
 * run). Both are left out: MAX_EVENT_LOOP_DELAY_MS=0 turns the shedder and
 * its 100 ms sampler off (at full speed the sampler's histogram reset costs
 * about 10 resets a second). The throughput rows keep it on.
 */

export interface InstructionRow {
  program: string;
  /** Instructions per request, one number per run. */
  perRequest: number[];
}

const REQUESTS = Number(process.env.BENCH_INSTR_REQUESTS ?? 5000);
const WARMUP = 3000;
const RUNS = Number(process.env.BENCH_INSTR_RUNS ?? 2);
// vgdb, behind callgrind_control, finds the program by user and host: both sides must agree.
const VGDB_ENV = { USER: 'runway-bench', LOGNAME: 'runway-bench', HOST: '127.0.0.1' };

export function valgrindMissing(): boolean {
  return spawnSync('valgrind', ['--version']).error !== undefined;
}

/** `count` GETs over `concurrency` keep-alive connections, one after the other on each. */
function load(port: number, path: string, count: number, concurrency = 8): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let sent = 0;
  let done = 0;
  let failed = 0;
  return new Promise((resolve) => {
    const next = () => {
      if (sent >= count) return;
      sent++;
      const settle = () => {
        if (++done === count) {
          agent.destroy();
          resolve(failed);
        } else next();
      };
      const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
        if (res.statusCode !== 200) failed++;
        res.resume();
        res.on('end', settle);
      });
      req.on('error', () => {
        failed++;
        settle();
      });
      req.end();
    };
    for (let i = 0; i < concurrency; i++) next();
  });
}

function callgrindControl(pid: number, ...args: string[]) {
  execFileSync('callgrind_control', [...args, String(pid)], {
    env: { PATH: process.env.PATH ?? '', ...VGDB_ENV },
    stdio: 'ignore',
  });
}

/** The instructions counted in the dumps in `dir`. */
function readDumps(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    // A dump's `summary:` line is written before the counts are known (0); its `totals:` line, at the end, has them.
    total += Number(/^totals:\s+(\d+)/m.exec(readFileSync(join(dir, name), 'utf8'))?.[1] ?? 0);
  }
  return total;
}

async function countOnce(program: Program, path: string, node: string) {
  const dir = mkdtempSync(join(tmpdir(), 'runway-callgrind-'));
  const port = await freePort();
  const child = start(
    {
      ...program,
      env: { ...program.env, ...VGDB_ENV, MAX_EVENT_LOOP_DELAY_MS: '0' },
      command: (file) => [
        'valgrind',
        '--tool=callgrind',
        '--instr-atstart=no',
        // V8 writes and rewrites machine code: valgrind must see it change.
        '--smc-check=all-non-file',
        `--callgrind-out-file=${join(dir, 'out')}`,
        node,
        file,
      ],
    },
    port,
  );
  try {
    await waitFor200(port, '/healthz', 120_000);
    const warmFailed = await load(port, path, WARMUP);
    callgrindControl(child.pid as number, '-i', 'on');
    const failed = await load(port, path, REQUESTS);
    callgrindControl(child.pid as number, '-i', 'off');
    callgrindControl(child.pid as number, '-d');
    if (warmFailed + failed > 0) throw new Error(`${program.name} ${path}: ${warmFailed + failed} requests failed`);
  } finally {
    await stop(child);
  }
  try {
    return Math.round(readDumps(dir) / REQUESTS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every program `RUNS` times, the runs alternating between them. */
export async function benchInstructions(programs: Program[], path: string, node: string): Promise<InstructionRow[]> {
  const rows: InstructionRow[] = programs.map((p) => ({ program: p.name, perRequest: [] }));
  for (let run = 0; run < RUNS; run++) {
    for (const [i, program] of programs.entries()) rows[i]?.perRequest.push(await countOnce(program, path, node));
  }
  return rows;
}
