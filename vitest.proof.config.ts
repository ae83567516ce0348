import { defineConfig } from 'vitest/config';

// `npm run test:rollout` and `npm run test:attacks`: the proofs that need a
// load balancer or attack tools, kept out of `npm test`'s quick loop.
export default defineConfig({
  test: {
    include: ['test/proof/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
