/**
 * Stands in for `node:http2` inside the bundle (esbuild alias, scripts/build.ts).
 * @hono/node-server imports node:http2 at the top only for `instanceof
 * Http2ServerRequest` checks and one constant. Loading the real module pulls
 * in crypto and more, measured at about 10 ms of cold start on our 2-core
 * machines, for a protocol our node:http server never speaks: every check is
 * false by construction, and so it is here.
 */
export class Http2ServerRequest {}
export const constants = { NGHTTP2_NO_ERROR: 0 };
