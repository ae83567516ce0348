import { defineConfig } from 'vitest/config';
import { driverPatchesVitePlugin } from './src/build/driver-patches.js';
import { runwayFromSource } from './vitest.shared.js';

// `npm run test:chaos`: the fault campaign against the built bundle
// (CHAOS_BUNDLE, else dist/server.js), kept out of `npm test`'s quick loop.
// Its second global setup draws the run's seed (CHAOS_SEED replays one).
export default defineConfig({
  ...runwayFromSource,
  // The same patched postgres.js as the bundle (src/build/driver-patches.ts), for the test's own connections.
  plugins: [driverPatchesVitePlugin],
  test: {
    server: { deps: { inline: ['postgres'] } },
    include: ['test/chaos/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts', 'test/chaos/seed-setup.ts'],
    // Child processes, a Postgres cluster of each file's own and real faults:
    // generous upper bounds, never targets.
    testTimeout: 240_000,
    hookTimeout: 90_000,
    fileParallelism: false,
  },
});
