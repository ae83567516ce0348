import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../scripts/free-port.js';

/**
 * A PostgreSQL 15 cluster of the test's own: `initdb` and `pg_ctl` as the
 * `postgres` user, in a temporary directory, on its own port, so a test can
 * kill it (`kill -9`) and start it again without touching the machine's
 * server. Trust auth, user `postgres`, database `postgres`.
 */

const BIN = '/usr/lib/postgresql/15/bin';
const run = promisify(execFile);

export interface Cluster {
  port: number;
  url: string;
  dataDir: string;
  /** pg_ctl start -w: resolves once the server accepts connections (after crash recovery too). */
  start(): Promise<void>;
  /** pg_ctl stop -m fast. */
  stop(): Promise<void>;
  /** SIGKILL to the postmaster and every backend at once: a crash, not a shutdown. */
  kill9(): Promise<void>;
  /** Stops the server and removes the directory. */
  destroy(): Promise<void>;
}

function asPostgres(command: string, args: string[]) {
  // Postgres refuses to run as root; the test runner usually is root here.
  if (process.getuid?.() === 0) return run('runuser', ['-u', 'postgres', '--', command, ...args]);
  return run(command, args);
}

export async function createCluster({ port }: { port?: number } = {}): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'runway-pg-'));
  const dataDir = join(dir, 'data');
  if (process.getuid?.() === 0) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(dir, uid, gid);
  }
  await asPostgres(`${BIN}/initdb`, ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const listenPort = port ?? (await freePort());
  const options = [
    `-p ${listenPort}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${dir}`,
    // A process crash loses nothing with fsync off; only an OS crash would.
    '-c fsync=off',
    '-c max_connections=100',
  ].join(' ');
  const logFile = join(dir, 'server.log');
  const cluster: Cluster = {
    port: listenPort,
    url: `postgres://postgres@127.0.0.1:${listenPort}/postgres`,
    dataDir,
    async start() {
      await asPostgres(`${BIN}/pg_ctl`, ['-D', dataDir, '-o', options, '-l', logFile, '-w', '-t', '60', 'start']);
    },
    async stop() {
      await asPostgres(`${BIN}/pg_ctl`, ['-D', dataDir, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    },
    async kill9() {
      const pid = postmasterPid(dataDir);
      if (pid === undefined) return;
      // The backends first, so none survives to hold the shared memory the restart needs.
      await run('pkill', ['-KILL', '-P', String(pid)]).catch(() => undefined);
      process.kill(pid, 'SIGKILL');
      await waitForExit(pid);
      await run('pkill', ['-KILL', '-u', 'postgres', '-f', `-D ${dataDir}`]).catch(() => undefined);
    },
    async destroy() {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function waitForExit(pid: number) {
  // No event tells another process's exit; poll, bounded.
  for (let tries = 0; tries < 500; tries++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`postmaster ${pid} did not exit after SIGKILL`);
}
