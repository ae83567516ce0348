import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import type { BuildOptions, Plugin } from 'esbuild';
import { driverPatchesPlugin } from './driver-patches.js';

/**
 * Node's built-in modules reached through `process.getBuiltinModule` instead
 * of ESM `import`. An ESM import of a builtin makes Node build an ESM facade
 * for it, which reads every export of the module and so wakes its lazy
 * getters (stream's web streams, crypto's webcrypto, undici behind them):
 * measured with --cpu-prof on Node 24, those facades were most of the gap
 * between runway's cold start and bare node:http. As CommonJS shims, esbuild
 * loads each builtin when the module that uses it initialises, and reads only
 * the properties the code touches.
 */
const builtinsWithoutFacades: Plugin = {
  name: 'builtins-without-esm-facades',
  setup(build) {
    const names = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
    build.onResolve({ filter: /^(node:)?[a-z_/0-9]+$/ }, (args) => {
      if (!names.has(args.path) || args.namespace === 'builtin') return undefined;
      return { path: args.path.replace(/^node:/, ''), namespace: 'builtin' };
    });
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(`node:${args.path}`)});`,
      loader: 'js',
    }));
  },
};

/**
 * The Node.js versions the bundle runs on: package.json's `engines.node`, the one place it is written
 * (read from the working directory, as the alias below is: bundles are built from the repository root).
 */
export const supportedNode = (JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } }).engines
  .node;

/**
 * The first statement of every bundle. The builtins above are reached at
 * module load, before any of runway's code runs, so on a Node.js without
 * `process.getBuiltinModule` (21.x, 22.0-22.2, below 20.16) the bundle would
 * die with a TypeError. It says which versions it needs and exits 1 instead.
 */
const nodeVersionCheck =
  `if(typeof process.getBuiltinModule!=="function"){process.stderr.write("runway: Node.js "+process.version+` +
  `" cannot run this bundle; it needs ${supportedNode}\\n");process.exit(1)}`;

/** The esbuild options every runway bundle shares: the shipped one, dev's and the test fixtures'. */
export const bundleOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // See src/runtime/http2-stub.ts for the measured reason.
  alias: { 'node:http2': './src/runtime/http2-stub.ts' },
  // driver-patches.ts: fixes to postgres.js for defects that take the process down.
  plugins: [builtinsWithoutFacades, driverPatchesPlugin],
  banner: { js: nodeVersionCheck },
  // Migrations ship inside the bundle.
  loader: { '.sql': 'text' },
  logLevel: 'warning',
} satisfies BuildOptions;
