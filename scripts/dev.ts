import { context } from 'esbuild';
import { entryStdin } from '../src/build/bundle.js';
import { bundleOptions } from '../src/build/bundle-options.js';
import { serveLocally } from './serve-local.js';

/**
 * Local development: esbuild rebuilds on every change into .cache/dev, and
 * `node --watch` restarts the server when the output changes. The restart is
 * a real SIGTERM, so the drain runs on every save as it would in production.
 */
const outfile = '.cache/dev/server.js';
const ctx = await context({
  ...bundleOptions,
  // The service as `runway build` bundles it, runway from its source (package.json's exports).
  stdin: entryStdin('service/server.ts'),
  conditions: ['runway-source'],
  outfile,
  sourcemap: 'linked',
  logLevel: 'info',
});
await ctx.rebuild();
await ctx.watch();
process.exitCode = await serveLocally(['--watch', '--enable-source-maps', outfile], { LOG_LEVEL: 'debug' });
await ctx.dispose();
