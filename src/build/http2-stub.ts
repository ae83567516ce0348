/**
 * Stands in for `node:http2` inside the bundle (bundle-options.ts serves it
 * as a module of its own). @hono/node-server imports node:http2 at the top
 * only for `instanceof Http2ServerRequest` checks and one constant. Loading
 * the real module pulls in crypto and more, measured at about 10 ms of cold
 * start on our 2-core machines, for a protocol our node:http server never
 * speaks: every check is false by construction, and so it is here. Held as
 * source text, not as a file to alias: the plugin works wherever runway is
 * installed, whatever the bundling tool's working directory.
 */
export const HTTP2_STUB_SOURCE = [
  'export class Http2ServerRequest {}',
  'export const constants = { NGHTTP2_NO_ERROR: 0 };',
].join('\n');
