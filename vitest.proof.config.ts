import { defineConfig } from 'vitest/config';
import { driverPatchesVitePlugin } from './scripts/driver-patches.js';

// `npm run test:rollout` and `npm run test:attacks`: the proofs that need a
// load balancer or attack tools, kept out of `npm test`'s quick loop.
export default defineConfig({
  // The same patched postgres.js as the bundle (scripts/driver-patches.ts).
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
