import type { BuildOptions } from 'esbuild';

/** The esbuild options every runway bundle shares: the shipped one, dev's and the test fixtures'. */
export const bundleOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // See src/runtime/http2-stub.ts for the measured reason.
  alias: { 'node:http2': './src/runtime/http2-stub.ts' },
  // Migrations ship inside the bundle.
  loader: { '.sql': 'text' },
  logLevel: 'warning',
} satisfies BuildOptions;
