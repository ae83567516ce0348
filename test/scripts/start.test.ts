import { describe, expect, it } from 'vitest';
import { fetchRaw, freePort, spawnProgram } from '../helpers.js';

async function waitReady(port: number, deadlineMs = 20_000) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    const reply = await fetchRaw(port, '/readyz').catch(() => undefined);
    if (reply?.status === 200) return JSON.parse(reply.body);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('never ready');
}

describe('npm start without DATABASE_URL', () => {
  it('starts the embedded Postgres, migrates it, serves the database, and drains on SIGINT', async () => {
    const port = await freePort();
    const { proc, exited } = spawnProgram('scripts/run.mjs', { PORT: String(port), HOST: '127.0.0.1' }, [
      'scripts/start.ts',
      '.cache/test/server.mjs',
    ]);
    let out = '';
    proc.stdout?.on('data', (chunk) => {
      out += chunk;
    });
    expect(await waitReady(port)).toEqual({ status: 'ready', checks: { event_loop: 'up', db: 'up' } });
    expect(JSON.parse((await fetchRaw(port, '/db/now')).body)).toEqual({ one: 1 });
    const warnings = out.split('\n').filter((line) => line.includes('embedded Postgres'));
    expect(warnings).toHaveLength(1);
    expect(out).toContain('"message":"migrations up to date"');
    proc.kill('SIGINT');
    expect((await exited).code).toBe(0);
  });

  it('starts no embedded database in production, and the server refuses to start', async () => {
    const { proc, exited } = spawnProgram('scripts/run.mjs', { NODE_ENV: 'production', PORT: '0' }, [
      'scripts/start.ts',
      // The notes service, which requires its database in production.
      'dist/server.js',
    ]);
    let all = '';
    proc.stdout?.on('data', (chunk) => {
      all += chunk;
    });
    proc.stderr?.on('data', (chunk) => {
      all += chunk;
    });
    expect((await exited).code).toBe(1);
    expect(all).not.toContain('embedded Postgres');
    expect(all).toContain('DATABASE_URL: is required');
  });
});
