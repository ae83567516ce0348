import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Metafile } from 'esbuild';
import { bundleOptions } from './bundle-options.js';

/**
 * esbuild -> dist/server.js: one minified ESM file with every dependency
 * inside, an external source map, and a size report per package.
 * `--if-stale` skips the build when dist/server.js is newer than every source.
 */

const outfile = 'dist/server.js';
const SIZE_BUDGET_BYTES = 250 * 1024;

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function isStale(): boolean {
  try {
    const built = statSync(outfile).mtimeMs;
    // The bundle's inputs beyond src/: how it is bundled, the driver patches, the engines range, the lockfile.
    const inputs = ['scripts/bundle-options.ts', 'scripts/driver-patches.ts', 'package.json', 'package-lock.json'];
    return newestMtime('src') > built || inputs.some((file) => statSync(file).mtimeMs > built);
  } catch {
    return true;
  }
}

function packageOf(path: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  return match?.[1] ?? 'runway (src)';
}

function report(metafile: Metafile) {
  const output = metafile.outputs[outfile];
  if (!output) return;
  const sizes = new Map<string, number>();
  for (const [path, info] of Object.entries(output.inputs)) {
    sizes.set(packageOf(path), (sizes.get(packageOf(path)) ?? 0) + info.bytesInOutput);
  }
  const rows = [...sizes].sort((a, b) => b[1] - a[1]);
  for (const [name, bytes] of rows) console.log(`  ${(bytes / 1024).toFixed(1).padStart(7)} KB  ${name}`);
  const total = output.bytes;
  const verdict = total <= SIZE_BUDGET_BYTES ? 'within' : 'OVER';
  console.log(
    `  ${(total / 1024).toFixed(1).padStart(7)} KB  ${outfile} (${verdict} the ${SIZE_BUDGET_BYTES / 1024} KB budget)`,
  );
  if (total > SIZE_BUDGET_BYTES) process.exitCode = 1;
}

if (process.argv.includes('--if-stale') && !isStale()) {
  console.log(`${outfile} is up to date`);
} else {
  const result = await build({
    entryPoints: ['src/server.ts'],
    ...bundleOptions,
    outfile,
    minify: true,
    sourcemap: 'linked',
    metafile: true,
    legalComments: 'none',
  });
  report(result.metafile);
}
