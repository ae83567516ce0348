import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build, type Metafile } from 'esbuild';
import { bundleOptions } from './bundle-options.js';

/**
 * `runway build <entry>`: esbuild -> one minified ESM file with every
 * dependency inside, an external source map, and a size report per package
 * against a budget. The entry is a service module (its default export the
 * app, optionally `env`, `setup`, `commands`); the bundle's own entry is a
 * generated one that hands that module to `startEntry`.
 */

export interface BundleRequest {
  entry: string;
  outfile?: string;
  /** Over it the report says OVER and the result is `overBudget`. */
  budgetBytes?: number;
  /** Skip the build when the output is newer than the entry's folder and every input given. */
  ifStale?: { inputs: string[] } | undefined;
  /** esbuild `conditions`, for a package's source entry points (this repository's own build). */
  conditions?: string[];
  /** The package the generated entry imports startEntry from (this repository: its source). */
  runtimeModule?: string;
  log?: (line: string) => void;
}

export interface BundleResult {
  outfile: string;
  bytes: number;
  overBudget: boolean;
  skipped: boolean;
}

export const DEFAULT_OUTFILE = 'dist/server.js';
// Past a megabyte, loading and compiling the file is a cost of its own on every cold start; an app that
// needs more says so with --budget-kb.
export const DEFAULT_BUDGET_BYTES = 1024 * 1024;

function newestMtime(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    newest = Math.max(newest, newestMtime(join(path, entry.name)));
  }
  return newest;
}

function isStale(outfile: string, entry: string, inputs: string[]): boolean {
  try {
    const built = statSync(outfile).mtimeMs;
    return [dirname(entry), ...inputs].some((input) => existsSync(input) && newestMtime(input) > built);
  } catch {
    return true;
  }
}

function packageOf(path: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  return match?.[1] ?? '(your code)';
}

function report(metafile: Metafile, outfile: string, budgetBytes: number, log: (line: string) => void) {
  const output = Object.entries(metafile.outputs).find(([path]) => resolve(path) === resolve(outfile))?.[1];
  if (!output) return 0;
  const sizes = new Map<string, number>();
  for (const [path, info] of Object.entries(output.inputs)) {
    sizes.set(packageOf(path), (sizes.get(packageOf(path)) ?? 0) + info.bytesInOutput);
  }
  const rows = [...sizes].sort((a, b) => b[1] - a[1]);
  for (const [name, bytes] of rows) log(`  ${(bytes / 1024).toFixed(1).padStart(7)} KB  ${name}`);
  const total = output.bytes;
  const verdict = total <= budgetBytes ? 'within' : 'OVER';
  log(`  ${(total / 1024).toFixed(1).padStart(7)} KB  ${outfile} (${verdict} the ${budgetBytes / 1024} KB budget)`);
  return total;
}

/**
 * The generated entry: the service module, imported and handed whole to startEntry (which reads what it
 * exports, and reports a module that throws as it loads). The import stays inside the one file.
 */
function entrySource(entry: string, runtimeModule: string): string {
  return [
    `import { startEntry } from ${JSON.stringify(runtimeModule)};`,
    `startEntry(import(${JSON.stringify(resolve(entry))}));`,
  ].join('\n');
}

/** The generated entry as esbuild's `stdin`, resolved from the working directory as `runway` is. */
export function entryStdin(entry: string, runtimeModule = 'runway') {
  return { contents: entrySource(entry, runtimeModule), resolveDir: process.cwd(), sourcefile: 'runway-entry.js' };
}

/** A file that can be an entry: not missing, not a directory. */
export function checkEntry(entry: string): void {
  if (!existsSync(entry)) throw new BundleError(`${entry}: no such file`);
  if (!statSync(entry).isFile()) throw new BundleError(`${entry}: not a file (give the entry module's path)`);
}

export async function bundleService({
  entry,
  outfile = DEFAULT_OUTFILE,
  budgetBytes = DEFAULT_BUDGET_BYTES,
  ifStale,
  conditions,
  runtimeModule,
  log = console.log,
}: BundleRequest): Promise<BundleResult> {
  checkEntry(entry);
  if (ifStale && !isStale(outfile, entry, ifStale.inputs)) {
    log(`${outfile} is up to date`);
    return { outfile, bytes: statSync(outfile).size, overBudget: false, skipped: true };
  }
  const result = await build({
    ...bundleOptions,
    stdin: entryStdin(entry, runtimeModule),
    ...(conditions && { conditions }),
    outfile,
    minify: true,
    sourcemap: 'linked',
    metafile: true,
    legalComments: 'none',
    logLevel: 'silent',
  }).catch((error: { errors?: { text: string; location?: { file: string; line: number } | null }[] }) => {
    const first = error.errors?.[0];
    if (!first) throw error;
    const where = first.location ? `${relative(process.cwd(), first.location.file)}:${first.location.line}: ` : '';
    const more = (error.errors?.length ?? 1) > 1 ? ` (and ${(error.errors?.length ?? 1) - 1} more)` : '';
    throw new BundleError(`${where}${first.text}${more}`);
  });
  const bytes = report(result.metafile, outfile, budgetBytes, log);
  return { outfile, bytes, overBudget: bytes > budgetBytes, skipped: false };
}

/** A build that failed for a reason the user can fix: one line, no stack. */
export class BundleError extends Error {
  override name = 'BundleError';
}
