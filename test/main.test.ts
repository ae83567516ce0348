import { describe, expect, it } from 'vitest';
import { spawnProgram } from './helpers.js';

describe('process start', () => {
  it('refuses to start on invalid config: every problem on stderr, exit 1, nothing listened', async () => {
    const { proc, exited } = spawnProgram('.cache/test/server.mjs', {
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
});
