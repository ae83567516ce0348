import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

/**
 * The Node.js versions runway supports. The bundle needs
 * `process.getBuiltinModule` (scripts/bundle-options.ts), added in 22.3.0
 * and backported to 20.16.0; 21.x never got it. package.json's engines field
 * states that range, the bundle checks it before anything else runs, and
 * docs/runtimes.md says which majors are supported.
 */

const engines = (JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } }).engines.node;

describe('supported Node.js versions', () => {
  it('admits exactly the versions that have process.getBuiltinModule', () => {
    for (const version of ['20.16.0', '20.20.2', '22.3.0', '22.12.0', '24.0.0', '26.0.0']) {
      expect(semver.satisfies(version, engines), version).toBe(true);
    }
    for (const version of ['18.20.0', '20.15.1', '21.7.3', '22.0.0', '22.2.0']) {
      expect(semver.satisfies(version, engines), version).toBe(false);
    }
  });

  it('makes the bundle exit 1 with one line naming the range on a Node.js without it', async () => {
    // The same as Node 22.2: no process.getBuiltinModule.
    const proc = spawn(
      process.execPath,
      ['--import', 'data:text/javascript,delete process.getBuiltinModule', 'dist/server.js'],
      { env: { PATH: process.env.PATH ?? '', PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let stdout = '';
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    const code = await new Promise((resolve) => proc.once('exit', resolve));
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(`runway: Node.js ${process.version} cannot run this bundle; it needs ${engines}\n`);
  });

  it('is stated in docs/runtimes.md', () => {
    expect(readFileSync('docs/runtimes.md', 'utf8')).toContain(`\`${engines}\``);
  });
});
