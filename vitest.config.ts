import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Child processes and real timeouts: generous upper bounds, never targets.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: process tests in parallel files contend for CPU and skew timeouts.
    fileParallelism: false,
  },
});
