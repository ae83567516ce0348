import { configDefaults, defineConfig } from 'vitest/config';
import { driverPatchesVitePlugin } from './src/build/driver-patches.js';
import { runwayFromSource } from './vitest.shared.js';

// Without TEST_DATABASE_URL the tests run on embedded Postgres (test/db-helpers.ts),
// and the file of what only a real server can prove is left out (global-setup says so).
const realPostgres = Boolean(process.env.TEST_DATABASE_URL);

export default defineConfig({
  ...runwayFromSource,
  plugins: [
    // The tests run the same patched postgres.js as the bundle (src/build/driver-patches.ts).
    driverPatchesVitePlugin,
    {
      // The same as esbuild's text loader in the bundle: a .sql import is its text.
      name: 'sql-as-text',
      transform(code, id) {
        if (id.endsWith('.sql')) return { code: `export default ${JSON.stringify(code)};`, map: null };
        return undefined;
      },
    },
  ],
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [
      ...configDefaults.exclude,
      // Rollout and attack proofs: `npm run test:rollout`, `npm run test:attacks` (vitest.proof.config.ts);
      // the fault campaign: `npm run test:chaos` (vitest.chaos.config.ts).
      'test/proof/**',
      'test/chaos/**',
      // The image, built and run: `npm run test:image` (vitest.image.config.ts).
      'test/image/**',
      ...(realPostgres ? [] : ['test/**/real-postgres.test.ts', 'test/db/pgbouncer.test.ts']),
    ],
    globalSetup: ['test/global-setup.ts'],
    // Inlined, so the driver patches above apply to it (vitest leaves node_modules to Node otherwise).
    server: { deps: { inline: ['postgres'] } },
    // Child processes and real timeouts: generous upper bounds, never targets.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: process tests in parallel files contend for CPU and skew timeouts.
    fileParallelism: false,
  },
});
