import { build } from 'esbuild';
import { bundleOptions } from '../scripts/bundle-options.js';

/** Bundles the fixture programs the lifecycle tests fork, the way the real bundle is built. */
export default async function setup() {
  await build({
    entryPoints: { server: 'test/fixtures/server.ts' },
    outdir: '.cache/test',
    outExtension: { '.js': '.mjs' },
    ...bundleOptions,
    sourcemap: 'inline',
  });
}
