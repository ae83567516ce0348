import { describe, expect, it } from 'vitest';
import { fetchRaw, spawnProgram, startFixture } from './helpers.js';

describe('process start', () => {
  it('refuses to start on invalid config: every problem of every part on stderr, exit 1, nothing listened', async () => {
    // The notes service: the runtime's variables, runway/postgres's (required in production) and its own.
    const { proc, exited } = spawnProgram('dist/server.js', {
      PORT: 'nope',
      NODE_ENV: 'production',
      LOG_LEVEL: 'chatty',
      JWT_SIGNING_KEY: 'tiny-secret-value',
    });
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (chunk) => {
      stdout += chunk;
    });
    proc.stderr?.on('data', (chunk) => {
      stderr += chunk;
    });
    expect((await exited).code).toBe(1);
    expect(stdout).toBe('');
    const entry = JSON.parse(stderr.trim());
    expect(entry).toMatchObject({ severity: 'ERROR', message: 'invalid configuration' });
    expect(entry.problems.map((p: string) => p.split(':')[0]).sort()).toEqual([
      'DATABASE_URL',
      'JWT_SIGNING_KEY',
      'LOG_LEVEL',
      'PORT',
    ]);
    expect(stderr).not.toContain('tiny-secret-value');
  });

  it('requires nothing of its own: an app that declares no variable starts in production with none set', async () => {
    const server = await startFixture({ NODE_ENV: 'production' });
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });

  it.each(['constructor', 'toString', '__proto__'])(
    'answers %s as an unknown command, exit 2: commands are own names only',
    async (name) => {
      const { proc, exited } = spawnProgram('.cache/test/server.mjs', {}, [name]);
      let out = '';
      proc.stdout?.on('data', (chunk) => {
        out += chunk;
      });
      expect((await exited).code).toBe(2);
      expect(JSON.parse(out.trim())).toMatchObject({ message: 'unknown command', command: name, known: ['migrate'] });
    },
  );
});
