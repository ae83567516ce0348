import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { securityHeaders } from '../src/runtime/security-headers.js';

/** What the benchmarks share: spawning, waiting, wrk and its parsing. */

export const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);

export interface Program {
  name: string;
  file: string;
  env?: Record<string, string>;
  /** The command line that runs `file`, when it is not this Node (Bun, Deno). */
  command?: (file: string) => string[];
}

export function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts a program on `port`. Its stdout is read as a platform would read it;
 * lines at WARNING or above are kept in `problems`, so a benchmark can say
 * what a non-2xx answer was.
 */
export function start(program: Program, port: number, node = process.execPath) {
  const [command = node, ...args] = program.command ? program.command(program.file) : [node, program.file];
  const child = spawn(command, args, {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      // runway's header set, for the Fastify peer to send the same (one source: security-headers.ts).
      SECURITY_HEADERS: JSON.stringify(securityHeaders),
      ...program.env,
    },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const problems: string[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (problems.length < 20 && /"severity":"(WARNING|ERROR)"/.test(line)) problems.push(line);
    }
  });
  return Object.assign(child, { problems });
}

export async function waitFor200(port: number, path: string, deadlineMs: number) {
  const deadline = performance.now() + deadlineMs;
  while (performance.now() < deadline) {
    try {
      if ((await get(port, path)) === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`no 200 from ${path} within ${deadlineMs} ms`);
}

export async function stop(child: ReturnType<typeof spawn>) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

export function wrk(port: number, path: string, seconds = DURATION_S, extra: string[] = []) {
  return parseWrk(execFileSync('wrk', wrkArgs(port, path, seconds, extra), { encoding: 'utf8' }));
}

/** wrk in the background, for a benchmark that measures something else while it runs. */
export function wrkAsync(port: number, path: string, seconds: number, extra: string[] = []) {
  return new Promise<ReturnType<typeof parseWrk>>((resolve, reject) => {
    execFile('wrk', wrkArgs(port, path, seconds, extra), { encoding: 'utf8' }, (error, out) =>
      error ? reject(error) : resolve(parseWrk(out)),
    );
  });
}

function wrkArgs(port: number, path: string, seconds: number, extra: string[]) {
  const connections = extra.includes('-c') ? [] : ['-c64'];
  return ['-t1', ...connections, `-d${seconds}s`, '--latency', ...extra, `http://127.0.0.1:${port}${path}`];
}

export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

function parseWrk(out: string) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p99 = parseLatency(/99%\s+([\d.]+\w+)/.exec(out)?.[1] ?? '');
  // Reported, not thrown: one odd answer in ten thousand should be seen, not end the run.
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: (.*)/.exec(out)?.[1];
  return { rps, p99Ms: p99, errors, requests, socketErrors };
}

function parseLatency(text: string): number {
  const match = /([\d.]+)(us|ms|s)/.exec(text);
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

/** utime + stime of a process, in clock ticks (10 ms each on Linux). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Runs `work` against the server `pid`, and reports its wall time, the server's CPU ticks and its peak RSS. */
export async function measured<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; seconds: number; ticks: number; peakRssMb: number }> {
  const ticksBefore = cpuTicks(pid);
  let peakRssMb = rssMb(pid);
  const poll = setInterval(() => {
    peakRssMb = Math.max(peakRssMb, rssMb(pid));
  }, 100);
  const started = performance.now();
  try {
    const result = await work();
    return { result, seconds: (performance.now() - started) / 1000, ticks: cpuTicks(pid) - ticksBefore, peakRssMb };
  } finally {
    clearInterval(poll);
  }
}
