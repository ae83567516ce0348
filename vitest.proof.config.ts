import { defineConfig } from 'vitest/config';
import { driverPatchesVitePlugin } from './src/build/driver-patches.js';
import { runwayFromSource } from './vitest.shared.js';

// `npm run test:rollout` and `npm run test:attacks`: the proofs that need a
// load balancer or attack tools, kept out of `npm test`'s quick loop.
export default defineConfig({
  ...runwayFromSource,
  // The same patched postgres.js as the bundle (src/build/driver-patches.ts).
  plugins: [driverPatchesVitePlugin],
  test: {
    server: { deps: { inline: ['postgres'] } },
    include: ['test/proof/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
