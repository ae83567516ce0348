import type { Context } from 'hono';
import { defineWebSocketHelper, type UpgradeWebSocket, type WSContext, type WSEvents } from 'hono/ws';
import { problemResponse } from './problem.js';
import { type RunwayBindings, stateOf } from './request-context.js';
import { type ProblemAnswer, runtimeProblems } from './runtime-problems.js';

/**
 * `upgradeWebSocket` for the app, one helper for node, Bun and Deno (Hono's
 * own is one per runtime, and each reaches its server differently). Written
 * as Hono's are, with `defineWebSocketHelper`:
 *
 *   app.get('/socket', upgradeWebSocket((c) => ({ onMessage(event, ws) { ws.send(event.data) } })))
 *
 * The handshake is checked here, the same on every edge, before the edge's
 * native upgrade (websocket-hub.ts has the rest of the policy):
 *   - not an upgrade at all: 426 with `Upgrade: websocket`;
 *   - not a valid RFC 6455 handshake: 400 (a missing or malformed
 *     Sec-WebSocket-Key), 426 with `Sec-WebSocket-Version: 13` for another
 *     version;
 *   - a browser on another origin: 403, unless WEBSOCKET_ORIGINS lists it.
 *     The request's own host is always allowed, and a client that sends no
 *     Origin is not a browser (a page cannot omit it). This is what stops a
 *     page on another site opening a socket with the user's cookies;
 *   - WEBSOCKET_MAX_CONNECTIONS open, or the drain began: 503, counted as shed (no access line).
 * The upgrade request itself went through the rate limit and the in-flight
 * cap like any request (its handler held a slot until the handshake), and
 * has one access line, status 101.
 */

/** Hono's socket events, and one of the runtime's. */
export interface SocketEvents extends WSEvents<unknown> {
  /**
   * The drain began: the socket gets its 1001 as soon as this returns, so a last message may go
   * now. One call per socket, nothing to remove: a listener added per socket to drainSignalOf(c),
   * which lives as long as the process, would hold every closed socket's memory (seen: 7 KB each).
   */
  onDrain?: (ws: WSContext<unknown>) => void;
}

/** What an edge hands the helper for a request that asks to upgrade (node-websocket.ts, web-server.ts). */
export interface SocketUpgrade {
  /** Origins allowed besides the request's own host (WEBSOCKET_ORIGINS). */
  readonly origins: readonly string[];
  /**
   * The request's method and headers as they arrived, on the web edge: Deno closes a request the
   * handler deadline answered, and its headers then throw. Undefined: the app's request is readable.
   */
  readonly method?: string;
  readonly headers?: Headers;
  /**
   * The refusal at the socket cap or during the drain, or undefined. A refusal is counted in the
   * shedder's summary and has no access line, as every shed request (a flood of upgrades past the
   * cap must not become a flood of ERROR lines).
   */
  refusal(): ProblemAnswer | undefined;
  /** The native handshake: the Response the handler returns, or a problem when the client has gone. */
  upgrade(events: SocketEvents, protocol: string | undefined): Response | Promise<Response>;
}

export const upgradeWebSocket = defineWebSocketHelper(async (c, events) => {
  const upgrade = socketUpgradeOf(c);
  const problem = handshakeProblem(
    upgrade?.method ?? c.req.method,
    upgrade?.headers ?? c.req.raw.headers,
    upgrade?.origins ?? [],
  );
  if (problem) return answer(c, problem);
  // Outside the runway server (`app.request()` in a test) nothing can take the socket over.
  if (!upgrade) return answer(c, runtimeProblems.internal());
  const refused = upgrade.refusal();
  if (refused) return answer(c, refused);
  const headers = upgrade.headers ?? c.req.raw.headers;
  const protocol = headers.get('sec-websocket-protocol')?.split(',')[0]?.trim() || undefined;
  return upgrade.upgrade(events, protocol);
}) as UpgradeWebSocket<unknown, unknown, SocketEvents>;

function answer(c: Context, { status, init }: ProblemAnswer): Response {
  const env = c.env as RunwayBindings | undefined;
  const requestId = env?.runway?.requestId ?? (env?.incoming && stateOf(env.incoming)?.requestId);
  return problemResponse(status, init, requestId);
}

function socketUpgradeOf(c: Context): SocketUpgrade | undefined {
  const env = c.env as RunwayBindings | undefined;
  if (env?.runway) return env.runway.upgrade;
  return env?.incoming ? stateOf(env.incoming)?.upgrade : undefined;
}

/** True when the request asks for a WebSocket (an edge then offers it a SocketUpgrade). */
export function asksForWebSocket(upgradeHeader: string | null | undefined): boolean {
  return upgradeHeader !== null && upgradeHeader !== undefined && upgradeHeader.toLowerCase() === 'websocket';
}

/** What is wrong with this handshake (RFC 6455 §4.2.1), or undefined. */
export function handshakeProblem(
  method: string,
  headers: Headers,
  origins: readonly string[],
): ProblemAnswer | undefined {
  if (!asksForWebSocket(headers.get('upgrade'))) return runtimeProblems.upgradeRequired();
  // HEAD reaches a GET route in Hono; a handshake is a GET, with no body.
  if (method !== 'GET') return runtimeProblems.badHandshake('a WebSocket handshake is a GET');
  if (headers.has('transfer-encoding') || (headers.get('content-length') ?? '0') !== '0') {
    return runtimeProblems.badHandshake('a WebSocket handshake has no body');
  }
  if (!/(^|,)\s*upgrade\s*(,|$)/i.test(headers.get('connection') ?? '')) {
    return runtimeProblems.badHandshake('Connection must include "upgrade"');
  }
  if (headers.get('sec-websocket-version') !== '13') return runtimeProblems.unsupportedWebSocketVersion();
  if (!validKey(headers.get('sec-websocket-key'))) {
    return runtimeProblems.badHandshake('Sec-WebSocket-Key must be 16 bytes in base64');
  }
  const origin = headers.get('origin');
  if (origin !== null && !originAllowed(origin, headers.get('host'), origins))
    return runtimeProblems.originNotAllowed();
  return undefined;
}

function validKey(key: string | null): boolean {
  // 16 bytes in base64: 22 characters and two `=` of padding.
  return key !== null && /^[A-Za-z0-9+/]{22}==$/.test(key);
}

function originAllowed(origin: string, host: string | null, origins: readonly string[]): boolean {
  if (origins.includes('*') || origins.includes(origin.toLowerCase())) return true;
  try {
    return host !== null && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * An app's answer to a request that asked for a WebSocket on a route that
 * does not take one (its handler answered 1xx-3xx without upgrading): a 400
 * problem on every edge, where node:http could not go on with the connection
 * anyway. The app's own 4xx and 5xx (a 401 from its auth) pass as they are.
 */
export function notUpgradedProblem(status: number): ProblemAnswer | undefined {
  return status < 400 ? runtimeProblems.notWebSocketRoute() : undefined;
}
