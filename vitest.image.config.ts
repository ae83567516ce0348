import { defineConfig } from 'vitest/config';
import { driverPatchesVitePlugin } from './src/build/driver-patches.js';
import { runwayFromSource } from './vitest.shared.js';

// `npm run test:image`: the Dockerfile built with buildah and run with podman
// (test/image/image.test.ts), kept out of `npm test`'s quick loop.
export default defineConfig({
  ...runwayFromSource,
  plugins: [driverPatchesVitePlugin],
  test: {
    server: { deps: { inline: ['postgres'] } },
    include: ['test/image/**/*.test.ts'],
    // A first run assembles the stand-in bases (debootstrap) and builds: generous bounds, not targets.
    testTimeout: 120_000,
    hookTimeout: 900_000,
    fileParallelism: false,
  },
});
