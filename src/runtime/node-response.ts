import { ServerResponse } from 'node:http';
import { securityHeaderLines, securityHeaders } from './security-headers.js';

/**
 * node:http's response, with the headers the runtime puts on every answer
 * (the security set, X-Request-Id, the RateLimit fields) written into the
 * header block as one prepared string. Through `setHeader`, one call per
 * header, node:http checks each name and value against its regexes,
 * lower-cases the name and stores it in the response's header dictionary;
 * and once one is set, `writeHead` takes its slow path, where every header
 * of the app's answer goes through `setHeader` as well. Measured on the
 * /json route (server CPU per request, wrk, A/B in one run, docs/benchmarks.md):
 * those calls were nearly all of what runway cost over plain Hono.
 *
 * The block goes in through `_storeHeader(firstLine, headers)`, the
 * OutgoingMessage method every node:http answer passes through (writeHead,
 * an implicit head, a 304): the lines are appended to the status line, and
 * Node adds the answer's own headers after them. It is node:http's
 * internal, unchanged in its signature from Node 0.x to 24; the edge-parity
 * cases (test/runtime/edge-parity.test.ts) pin the headers on Node 20 and the
 * artifact test on Node 24, and this module refuses to load if the method is
 * gone. The values are
 * the runtime's own (constants, a request id of a safe charset, numbers), so
 * nothing unchecked reaches the wire.
 *
 * The app's own value wins: a name of the block that the answer also sets
 * (a stricter Strict-Transport-Security, its own X-Request-Id) is left out
 * of the block, so no header is sent twice.
 */

type StoreHeader = (this: ServerResponse, firstLine: string, headers: unknown) => void;

const storeHeader = (ServerResponse.prototype as unknown as { _storeHeader?: StoreHeader })._storeHeader;
if (typeof storeHeader !== 'function') {
  throw new Error('node:http has no OutgoingMessage#_storeHeader: this Node is not supported by runway');
}

/** Every name the block may hold, lower-case, with the lengths that can match (a cheap first test). */
const ownNames = new Set([...Object.keys(securityHeaders), 'x-request-id', 'ratelimit-policy', 'ratelimit']);
const shortest = Math.min(...[...ownNames].map((name) => name.length));
const longest = Math.max(...[...ownNames].map((name) => name.length));

export class RuntimeResponse extends ServerResponse {
  /** Echoed as X-Request-Id: set by the edge when the request arrives. */
  requestId: string | undefined = undefined;
  /** The RateLimit-Policy and RateLimit fields, as header lines, when the rate limit is on. */
  rateLines = '';

  /** node:http's internal (see above): the head of the answer is built here. */
  _storeHeader(firstLine: string, headers: unknown) {
    (storeHeader as StoreHeader).call(this, firstLine + runtimeLines(this, headers), headers);
  }
}

/**
 * The runtime's header lines of `res`, each ending in CRLF, less the names `headers` (the answer's own)
 * sets. The WebSocket handshake takes them too.
 */
export function runtimeLines(res: RuntimeResponse, headers: unknown): string {
  const id = res.requestId === undefined ? '' : `x-request-id: ${res.requestId}\r\n`;
  const own = securityHeaderLines + id + res.rateLines;
  return headers && setsOwnName(headers) ? withoutNamesOf(own, headers) : own;
}

/** The RateLimit fields as header lines. */
export function rateLinesOf(rateHeaders: [string, string][] | undefined): string {
  if (!rateHeaders) return '';
  let lines = '';
  for (const [name, value] of rateHeaders) lines += `${name}: ${value}\r\n`;
  return lines;
}

// The names `headers` sets, in the three shapes node:http hands _storeHeader: its own dictionary or
// writeHead's object (name keys), a flat array [name, value, ...], or an array of [name, value].
function namesOf(headers: unknown): string[] {
  if (!Array.isArray(headers)) return Object.keys(headers as object);
  if (Array.isArray(headers[0])) return (headers as [string, unknown][]).map(([name]) => name);
  return (headers as string[]).filter((_, i) => i % 2 === 0);
}

function isOwn(name: string): boolean {
  return name.length >= shortest && name.length <= longest && ownNames.has(name.toLowerCase());
}

function setsOwnName(headers: unknown): boolean {
  if (!Array.isArray(headers)) {
    for (const name in headers as object) if (isOwn(name)) return true;
    return false;
  }
  return namesOf(headers).some(isOwn);
}

function withoutNamesOf(lines: string, headers: unknown): string {
  const set = new Set(namesOf(headers).map((name) => String(name).toLowerCase()));
  return lines
    .split('\r\n')
    .filter((line) => line !== '' && !set.has(line.slice(0, line.indexOf(':'))))
    .map((line) => `${line}\r\n`)
    .join('');
}
