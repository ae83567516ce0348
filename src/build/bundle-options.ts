import { builtinModules } from 'node:module';
import type { BuildOptions, Plugin } from 'esbuild';
import { driverPatchesPlugin } from './driver-patches.js';
import { HTTP2_STUB_SOURCE } from './http2-stub.js';

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
 * The Node.js versions the bundle runs on. package.json's `engines.node` says the same, and
 * test/node-versions.test.ts fails when the two differ (this file ships without package.json beside it).
 */
export const SUPPORTED_NODE = '^20.16.0 || >=22.3.0';

/** `node:http2` as the stub (http2-stub.ts says why). Before the builtins plugin, which would claim it. */
export const http2Stub: Plugin = {
  name: 'node-http2-stub',
  setup(build) {
    build.onResolve({ filter: /^(node:)?http2$/ }, () => ({ path: 'http2', namespace: 'runway-http2-stub' }));
    build.onLoad({ filter: /.*/, namespace: 'runway-http2-stub' }, () => ({
      contents: HTTP2_STUB_SOURCE,
      loader: 'js',
    }));
  },
};

/**
 * The first statement of every bundle. The builtins above are reached at
 * module load, before any of runway's code runs, so on a Node.js without
 * `process.getBuiltinModule` (21.x, 22.0-22.2, below 20.16) the bundle would
 * die with a TypeError. It says which versions it needs and exits 1 instead.
 */
const nodeVersionCheck =
  `if(typeof process.getBuiltinModule!=="function"){process.stderr.write("runway: Node.js "+process.version+` +
  `" cannot run this bundle; it needs ${SUPPORTED_NODE}\\n");process.exit(1)}`;

/**
 * The esbuild options every runway bundle shares: `runway build`'s, `runway dev`'s, this repository's
 * service, bench and test fixtures. For users who bundle with esbuild themselves: spread them, then add
 * entryPoints and outfile.
 */
export const bundleOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // driver-patches.ts: fixes to postgres.js for defects that take the process down.
  plugins: [http2Stub, builtinsWithoutFacades, driverPatchesPlugin],
  banner: { js: nodeVersionCheck },
  // An app's migrations ship inside the bundle (runway/postgres).
  loader: { '.sql': 'text' },
  logLevel: 'warning',
} satisfies BuildOptions;
