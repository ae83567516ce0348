import { builtinModules } from 'node:module';
import type { BuildOptions, Plugin } from 'esbuild';

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

/** The esbuild options every runway bundle shares: the shipped one, dev's and the test fixtures'. */
export const bundleOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // See src/runtime/http2-stub.ts for the measured reason.
  alias: { 'node:http2': './src/runtime/http2-stub.ts' },
  plugins: [builtinsWithoutFacades],
  // Migrations ship inside the bundle.
  loader: { '.sql': 'text' },
  logLevel: 'warning',
} satisfies BuildOptions;
