import { context } from 'esbuild';
import { bundleOptions } from './bundle-options.js';
import { serveLocally } from './serve-local.js';

/**
 * Local development: esbuild rebuilds on every change into .cache/dev, and
 * `node --watch` restarts the server when the output changes. The restart is
 * a real SIGTERM, so the drain runs on every save as it would in production.
 */
const outfile = '.cache/dev/server.js';
const ctx = await context({
  ...bundleOptions,
  entryPoints: ['src/server.ts'],
  outfile,
  sourcemap: 'linked',
  logLevel: 'info',
});
await ctx.rebuild();
await ctx.watch();
process.exitCode = await serveLocally(['--watch', '--enable-source-maps', outfile], { LOG_LEVEL: 'debug' });
await ctx.dispose();
