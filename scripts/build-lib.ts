import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

/**
 * `npm run build:lib` (and `npm pack`, through prepack): runway's source
 * into lib/, one .js per .ts with the same layout (modules share state,
 * request-context.ts's bindings above all, so nothing is bundled twice), and
 * a .d.ts beside each from tsc (tsconfig.lib.json).
 */
const outdir = 'lib';
rmSync(outdir, { recursive: true, force: true });

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

await build({
  entryPoints: sources('src'),
  outdir,
  outbase: 'src',
  bundle: false,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
});
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.lib.json'], { stdio: 'inherit' });
console.log(`${outdir}: ${sources('src').length} modules with their declarations`);
