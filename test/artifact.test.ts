import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from 'hono/jwt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { NODE24 } from '../scripts/node24.js';
import { securityHeaders } from '../src/runtime/security-headers.js';
import { freshDatabase } from './db-helpers.js';
import { fetchRaw, freePort } from './helpers.js';

/**
 * The shipped artifact as the image runs it: only dist/ in a directory the
 * process cannot write, no node_modules anywhere near, Node 24 (the image's
 * major), uid/gid 65532 (distroless `nonroot`), and an environment holding
 * nothing but the variables it needs.
 */

const NONROOT = '65532';
const KEY = 'artifact-test-signing-key-0123456789abcdef';

function artifactDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'runway-artifact-'));
  cpSync('dist', join(dir, 'dist'), { recursive: true });
  // Readable and runnable by everyone, writable by nobody but root.
  chmodSync(dir, 0o555);
  chmodSync(join(dir, 'dist'), 0o555);
  onTestFinished(() => {
    chmodSync(dir, 0o755);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

// As root (here and in .ci/run) the process drops to 65532 with setpriv; a
// runner that is already unprivileged (GitHub's) runs it as itself.
const asRoot = process.getuid?.() === 0;

function runAsNonroot(dir: string, env: Record<string, string>, args: string[] = []) {
  const command = [NODE24, 'dist/server.js', ...args];
  const proc = asRoot
    ? spawn('setpriv', [`--reuid=${NONROOT}`, `--regid=${NONROOT}`, '--clear-groups', '--', ...command], {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(NODE24, command.slice(1), { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  proc.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  onTestFinished(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, exited, output: () => output };
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, proc: ChildProcess, output: () => string) {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`exited before ${what}: ${output()}`);
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`never ${what}: ${output()}`);
}

describe('the artifact', () => {
  it('is one file of JavaScript plus its source map', () => {
    expect(readdirSync('dist').sort()).toEqual(['server.js', 'server.js.map']);
  });

  it('migrates, serves health, readiness and the API against Postgres, then drains to exit 0: from dist/ alone, as nonroot on Node 24', async () => {
    const dir = artifactDir();
    const databaseUrl = await freshDatabase();
    const base = { NODE_ENV: 'production', DATABASE_URL: databaseUrl, JWT_SIGNING_KEY: KEY };

    const migrate = runAsNonroot(dir, base, ['migrate']);
    expect(await migrate.exited, migrate.output()).toBe(0);
    expect(migrate.output()).toContain('"message":"migration applied"');

    const port = await freePort();
    const server = runAsNonroot(dir, { ...base, PORT: String(port), HOST: '127.0.0.1' });
    const ready = await until(
      async () => {
        const reply = await fetchRaw(port, '/readyz');
        return reply.status === 200 ? reply : undefined;
      },
      'ready',
      server.proc,
      server.output,
    );
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', checks: { event_loop: 'up', db: 'up' } });
    const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${server.proc.pid}/status`, 'utf8'));
    expect(uid?.[2]).toBe(asRoot ? NONROOT : String(process.getuid?.()));
    expect(uid?.[2]).not.toBe('0');
    const live = await fetchRaw(port, '/healthz', { headers: { 'x-request-id': 'artifact-1' } });
    expect(live.status).toBe(200);
    // The runtime's headers go into node:http's own header block (node-response.ts): pinned on the image's Node.
    for (const [name, value] of Object.entries(securityHeaders)) expect(live.headers[name], name).toBe(value);
    expect(live.headers['x-request-id']).toBe('artifact-1');

    const now = Math.floor(Date.now() / 1000);
    const token = await sign({ sub: 'artifact', exp: now + 300 }, KEY, 'HS256');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const created = await fetchRaw(port, '/v1/notes', {
      method: 'POST',
      headers,
      body: '{"title":"from the artifact"}',
    });
    expect(created.status).toBe(201);
    expect(created.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(created.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const read = await fetchRaw(port, created.headers.location as string, { headers });
    expect(JSON.parse(read.body)).toMatchObject({ title: 'from the artifact' });

    server.proc.kill('SIGTERM');
    expect(await server.exited, server.output()).toBe(0);
    expect(server.output()).toContain('"message":"shutdown complete"');
    // The process could not write where it runs: nothing new appeared beside dist/.
    expect(readdirSync(dir)).toEqual(['dist']);
  });

  it('has not loaded the fetch implementation of Node (undici) when it listens: the app and its Web globals load after', async () => {
    // Node loads its internal undici on the first touch of a Web global (Request, Headers,
    // CloseEvent...): 45-65 ms and 16 MB on Node 24 (docs/benchmarks.md), so the bundle must not
    // touch one before `listen`. Read from process.moduleLoadList when the server emits 'listening'.
    const dir = mkdtempSync(join(tmpdir(), 'runway-undici-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const hook = join(dir, 'hook.cjs');
    writeFileSync(
      hook,
      `const http = require('node:http');
      const loaded = () => process.moduleLoadList.some((name) => name.includes('undici'));
      const emit = http.Server.prototype.emit;
      http.Server.prototype.emit = function (event, ...args) {
        if (event === 'listening') process.stderr.write('undici at listen: ' + loaded() + '\\n');
        if (event === 'request') process.stderr.write('undici at a request: ' + loaded() + '\\n');
        return emit.call(this, event, ...args);
      };`,
    );
    const port = await freePort();
    const proc = spawn(NODE24, ['--require', hook, 'dist/server.js'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    onTestFinished(() => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    });
    let output = '';
    proc.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    await until(
      async () => ((await fetchRaw(port, '/')).status === 200 ? true : undefined),
      'answered /',
      proc,
      () => output,
    );
    proc.kill('SIGTERM');
    await new Promise((resolve) => proc.once('exit', resolve));
    expect(output).toContain('undici at listen: false');
    // The hook can tell: once the app answers, it is loaded.
    expect(output).toContain('undici at a request: true');
  });

  it('refuses to start in production without DATABASE_URL', async () => {
    const dir = artifactDir();
    const run = runAsNonroot(dir, { NODE_ENV: 'production', PORT: String(await freePort()) });
    expect(await run.exited).toBe(1);
    expect(run.output()).toContain('DATABASE_URL: is required');
    expect(run.output()).not.toContain('"message":"listening"');
  });
});
