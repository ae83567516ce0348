import { spawn } from 'node:child_process';
import { context } from 'esbuild';
import { bundleOptions } from './bundle-options.js';

/**
 * Local development: esbuild rebuilds on every change into .cache/dev, and
 * `node --watch` restarts the server when the output changes. The restart is
 * a real SIGTERM, so the drain runs on every save as it would in production.
 */

const outfile = '.cache/dev/server.js';
const ctx = await context({
  entryPoints: ['src/server.ts'],
  ...bundleOptions,
  outfile,
  sourcemap: 'linked',
  logLevel: 'info',
});
await ctx.rebuild();
await ctx.watch();

const child = spawn(process.execPath, ['--watch', '--enable-source-maps', outfile], {
  stdio: 'inherit',
  env: { LOG_LEVEL: 'debug', ...process.env },
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    child.kill(signal);
    void ctx.dispose();
  });
}
child.on('exit', (code) => {
  process.exitCode = code ?? 1;
  void ctx.dispose();
});
