import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { ensureNode24 } from '../scripts/node24.js';
import { ensureBun, ensureDeno } from '../scripts/runtimes.js';
import { bundleOptions } from '../src/build/bundle-options.js';
import { FIXTURE_PROGRAMS } from './fixtures/programs.js';

/**
 * Bundles the fixture programs the lifecycle tests fork, the way the real
 * bundle is built; builds dist/server.js itself when a source is newer (the
 * artifact test runs it); installs Node 24 (artifact test), Bun and Deno (runtime contract) if missing.
 */
export default async function setup() {
  execFileSync(process.execPath, ['scripts/run.mjs', 'scripts/build.ts', '--if-stale'], { stdio: 'inherit' });
  ensureNode24();
  ensureBun();
  ensureDeno();
  if (!process.env.TEST_DATABASE_URL) {
    console.log(
      'TEST_DATABASE_URL is not set: the database tests run on embedded Postgres (PGlite), and ' +
        'test/db/real-postgres.test.ts (cancellation, statement_timeout, concurrency) is left out. ' +
        'Set TEST_DATABASE_URL to run it.',
    );
  }
  await build({
    // One program per scenario (test/fixtures/fixture-app.ts is what they share).
    entryPoints: FIXTURE_PROGRAMS.map((name) => ({ in: `test/fixtures/${name}.ts`, out: name })),
    outdir: '.cache/test',
    outExtension: { '.js': '.mjs' },
    ...bundleOptions,
    // runway from its source (package.json's exports), as npm run build does.
    conditions: ['runway-source'],
    sourcemap: 'inline',
  });
}
