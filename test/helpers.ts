import { type ChildProcess, spawn } from 'node:child_process';
import { type Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import { freePort } from '../scripts/free-port.js';
import type { Runtime } from '../scripts/runtimes.js';

export type LogLine = Record<string, unknown> & { severity: string; message: string };

export interface Fixture {
  port: number;
  proc: ChildProcess;
  logs: LogLine[];
  stderr(): string;
  waitForLog(predicate: (line: LogLine) => boolean, what?: string): Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export const FIXTURE = '.cache/test/server.mjs';

export { FIXTURE_PROGRAMS, fixtureProgram } from './fixtures/programs.js';

/** Forks a program with a clean environment and registers its teardown. `on` picks the runtime. */
export function spawnProgram(
  program: string,
  env: Record<string, string>,
  args: string[] = [],
  on?: Runtime,
  cwd?: string,
) {
  const [command, ...prefix] = on ? on.command(program) : [process.execPath, program];
  const proc = spawn(command, [...prefix, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, exited };
}

/** Starts the fixture server on an ephemeral port; resolves once it logged `waitFor`. */
export async function startFixture(
  env: Record<string, string> = {},
  waitFor = 'started',
  options: { program?: string; runtime?: Runtime; args?: string[]; cwd?: string } = {},
): Promise<Fixture> {
  if (waitFor === 'none' && !env.PORT) env = { ...env, PORT: String(await freePort()) };
  const { proc, exited } = spawnProgram(
    options.program ?? FIXTURE,
    { PORT: '0', HOST: '127.0.0.1', ...env },
    options.args,
    options.runtime,
    options.cwd,
  );
  const logs: LogLine[] = [];
  let stderr = '';
  const waiters = new Set<() => void>();
  let buffered = '';
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // Kept, not thrown (a throw here would be an unhandled error): tests assert on it.
        logs.push({ severity: 'NOT_JSON', message: line });
      }
      for (const wake of waiters) wake();
    }
  });
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });

  const waitForLog = (predicate: (line: LogLine) => boolean, what = 'a log line') =>
    new Promise<LogLine>((resolve, reject) => {
      const check = () => {
        const found = logs.find(predicate);
        if (found) {
          waiters.delete(check);
          resolve(found);
        }
      };
      waiters.add(check);
      check();
      void exited.then(() => {
        if (waiters.has(check)) {
          waiters.delete(check);
          reject(new Error(`process exited before ${what}; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`));
        }
      });
    });

  if (waitFor === 'none') {
    // Quiet log levels never print the listening line: find the port by polling.
    const port = Number(env.PORT);
    if (!port) throw new Error("waitFor 'none' needs an explicit PORT");
    for (let tries = 0; !(await canConnect(port)); tries++) {
      if (tries > 500 || proc.exitCode !== null) throw new Error(`not listening on ${port}; stderr: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return { port, proc, logs, stderr: () => stderr, waitForLog, exited };
  }
  const listening = await waitForLog((line) => line.message === 'listening', 'listening');
  if (waitFor !== 'listening') await waitForLog((line) => line.message === waitFor, waitFor);
  return { port: listening.port as number, proc, logs, stderr: () => stderr, waitForLog, exited };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function fetchRaw(
  port: number,
  path: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    agent?: Agent | false;
    body?: string | Buffer;
    host?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: options.host ?? '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface RawConnection {
  socket: Socket;
  received(): string;
  closed: Promise<void>;
}

/** A plain TCP connection, for what only a misbehaving client does. */
export function rawConnect(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('error', () => {});
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    onTestFinished(() => {
      socket.destroy();
    });
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
    socket.once('error', reject);
  });
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      // Linux can pick the destination port itself as the source port of a
      // loopback connect when nothing listens there (TCP simultaneous open):
      // the socket is then connected to itself, not to a server.
      const self = socket.localPort === socket.remotePort;
      socket.destroy();
      resolve(!self);
    });
    socket.once('error', () => resolve(false));
  });
}

export { freePort };
