// Runs a TypeScript script on Node 20 without a loader: esbuild compiles it
// (dependencies stay external) into .cache/scripts, then it is imported.
// Usage: node scripts/run.mjs scripts/build.ts [args...]
import { mkdirSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  console.error('usage: node scripts/run.mjs <script.ts> [args...]');
  process.exit(2);
}
const outdir = resolve('.cache/scripts');
mkdirSync(outdir, { recursive: true });
const outfile = resolve(outdir, `${basename(entry, '.ts')}.mjs`);
await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Dependencies stay external, but runway itself (this package, imported by name from service/) is
  // bundled from its source: its lib is built only for `npm pack`.
  conditions: ['runway-source'],
  plugins: [
    {
      name: 'external-packages-but-runway',
      setup(build) {
        build.onResolve({ filter: /^[^./]/ }, (args) =>
          /^runway(\/|$)/.test(args.path) ? undefined : { path: args.path, external: true },
        );
      },
    },
  ],
  sourcemap: 'inline',
  logLevel: 'warning',
});
process.argv = [process.argv[0], outfile, ...args];
await import(pathToFileURL(outfile).href);
