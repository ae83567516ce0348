import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

/**
 * HAProxy (Debian's package) in front of the instances, on loopback, with
 * the configuration a production user would write: health checks on
 * GET /readyz every 250 ms, one failure takes a server out, one success puts
 * it back; a check may take 2 s, runway's own bound on its readiness checks
 * (READINESS_TIMEOUT_MS): without it HAProxy gives up at `inter`, so a check
 * slowed by the whole load on the one instance left serving while the other
 * restarts takes it out with nothing behind it (CI saw 37 of HAProxy's own
 * 503s in such a window); 3 retries with redispatch on connection failures (HAProxy's
 * defaults for a refused connect). Its admin socket tells when it sees a
 * server UP or DOWN.
 */
export interface Proxy {
  port: number;
  serverState(name: string): Promise<string>;
  waitForState(name: string, state: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startHaproxy(port: number, servers: { name: string; port: number }[]): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), 'runway-haproxy-'));
  const socket = join(dir, 'admin.sock');
  const config = `global
  stats socket ${socket} mode 600 level admin
  maxconn 4000

defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 10s
  # WebSockets: the tunnel's idle bound, above the servers' ping interval.
  timeout tunnel 120s
  retries 3
  option redispatch 1

frontend fe
  bind 127.0.0.1:${port}
  default_backend app

backend app
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz
  http-check expect status 200
  timeout check 2s
  default-server inter 250ms fastinter 100ms downinter 250ms fall 1 rise 1
${servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check`).join('\n')}
`;
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const proc: ChildProcess = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  onTestFinished(() => {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const command = (line: string) =>
    new Promise<string>((resolve, reject) => {
      const conn = connect(socket);
      let out = '';
      conn.setEncoding('utf8');
      conn.on('data', (chunk: string) => {
        out += chunk;
      });
      conn.on('end', () => resolve(out));
      conn.on('error', reject);
      conn.end(`${line}\n`);
    });

  const serverState = async (name: string) => {
    const csv = await command('show stat');
    const row = csv.split('\n').find((line) => line.startsWith(`app,${name},`));
    // Column 18 of `show stat` is the status (UP, DOWN, MAINT, ...).
    return row?.split(',')[17] ?? 'MISSING';
  };

  const waitForState = async (name: string, state: 'UP' | 'DOWN', timeoutMs = 10_000) => {
    const deadline = performance.now() + timeoutMs;
    // No event to wait on: HAProxy is asked, at a bounded rate, until it agrees.
    while (!(await serverState(name).catch(() => '')).startsWith(state)) {
      if (performance.now() > deadline) throw new Error(`HAProxy never saw ${name} ${state}; stderr: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  // Up once its admin socket answers.
  const deadline = performance.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited: ${stderr}`);
    if (
      await command('show info').then(
        () => true,
        () => false,
      )
    )
      break;
    if (performance.now() > deadline) throw new Error(`haproxy did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    serverState,
    waitForState,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
