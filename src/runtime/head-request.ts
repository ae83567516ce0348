/**
 * HEAD is served as the GET it mirrors (RFC 9110 §9.3.2: the same header
 * fields, no content), on every edge: the app is asked for GET, and the body
 * of its answer is cancelled before the headers go out.
 *
 * Why the runtime does it rather than the app: Hono dispatches a HEAD as GET
 * itself and answers `new Response(null, getResponse)`, which drops the GET
 * answer's body without cancelling it. When that body is a stream (Hono's
 * `stream()` and `streamSSE()`, or any ReadableStream), its producer is never
 * told: it writes into a stream nobody reads and waits on its backpressure
 * until the process exits, holding its context and whatever it captured.
 * Measured on an event stream: 4 000 HEADs took the server's RSS from 58 to
 * 252 MB. Cancelling the body is what a client that leaves a GET does to it
 * (@hono/node-server cancels the reader), so a producer that stops for a
 * gone client stops for a HEAD as well.
 *
 * An app that answered HEAD differently from GET (Hono apps cannot: the
 * router never sees HEAD) sees GET now: docs/edge.md.
 */

import { asksForWebSocket } from './websocket.js';

/**
 * Whether `request` is a HEAD to serve as GET. Not one that asks for a WebSocket: asked as GET, the
 * app's upgrade would take the socket and write a 101 to a HEAD. Left a HEAD, the handshake check
 * refuses it with 400 (websocket.ts handshakeProblem), and a problem's body is no stream.
 */
export function servedAsGet(request: Request): boolean {
  return request.method === 'HEAD' && !asksForWebSocket(request.headers.get('upgrade'));
}

/** The GET the app is asked for in place of a HEAD: the same URL, headers and signal. */
export function asGet(request: Request): Request {
  return new Request(request, { method: 'GET' });
}

/** The app's answer to that GET, with its body cancelled: status and headers only. */
export function headOf(response: Response): Response {
  const body = response.body;
  if (!body) return response;
  // A locked body is being read by someone else (it cannot be cancelled here); an error is the producer's.
  if (!body.locked) body.cancel().catch(() => {});
  return new Response(null, { status: response.status, statusText: response.statusText, headers: response.headers });
}
