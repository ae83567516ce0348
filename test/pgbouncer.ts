import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { freePort } from '../scripts/free-port.js';
import { canConnect } from './helpers.js';

/**
 * A real PgBouncer (Debian's `pgbouncer`, 1.18) in front of `serverUrl`, in
 * transaction mode as hosted Postgres services run it, on a port of its own.
 * It refuses to run as root, so as root it runs as `postgres`. Trust auth;
 * any database name is passed through to the server. Stopped after the test.
 */
export async function startPgBouncer(serverUrl: string): Promise<{ url(database: string): string; log(): string }> {
  const server = new URL(serverUrl);
  const dir = mkdtempSync(join(tmpdir(), 'runway-pgbouncer-'));
  const port = await freePort();
  const logFile = join(dir, 'pgbouncer.log');
  writeFileSync(join(dir, 'users.txt'), `"${decodeURIComponent(server.username || 'postgres')}" ""\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      "unix_socket_dir = ''",
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      'pool_mode = transaction',
      'default_pool_size = 5',
      `logfile = ${logFile}`,
      '',
    ].join('\n'),
  );
  const root = process.getuid?.() === 0;
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    for (const file of ['', 'users.txt', 'pgbouncer.ini']) chownSync(join(dir, file), uid, gid);
  }
  const command = ['pgbouncer', join(dir, 'pgbouncer.ini')];
  const proc = root
    ? spawn('runuser', ['-u', 'postgres', '--', ...command], { stdio: 'ignore' })
    : spawn(command[0] as string, command.slice(1), { stdio: 'ignore' });
  onTestFinished(() => {
    proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  // No readiness event from another process: poll for the listener, bounded.
  for (let tries = 0; !(await canConnect(port)); tries++) {
    if (tries > 200 || proc.exitCode !== null) throw new Error(`pgbouncer did not start on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    url(database) {
      const url = new URL(serverUrl);
      url.host = `127.0.0.1:${port}`;
      url.pathname = `/${database}`;
      url.search = '';
      return url.href;
    },
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
}
