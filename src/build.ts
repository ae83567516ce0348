/**
 * `runway/build`: the esbuild options and plugins every runway bundle is
 * built with (`runway build` uses them), for users who bundle themselves:
 * `await build({ ...bundleOptions, entryPoints: ['src/server.ts'], outfile: 'dist/server.js' })`.
 */
export { bundleOptions, http2Stub, SUPPORTED_NODE } from './build/bundle-options.js';
export { driverPatchesPlugin, driverPatchesVitePlugin } from './build/driver-patches.js';
