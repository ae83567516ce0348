import { setMaxListeners } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientIp, type Trust } from './client-ip.js';
import type { Logger } from './logger.js';
import type { RouteLimits } from './route-settings.js';
import type { SocketUpgrade } from './websocket.js';

/**
 * What the runtime knows about one request, and the helpers the app uses to
 * read it: `signalOf(c)`, `requestIdOf(c)`, `clientIpOf(c)`, `loggerOf(c)`. The AbortSignal
 * fires when the client goes away, the handler deadline passes, or the drain
 * deadline is reached. Its controller is made only when a handler asks for
 * it: most requests never do, and an AbortController per request is
 * measurable on the hot path.
 */

const stateKey = Symbol('runway.request');

export interface RequestState {
  req: IncomingMessage;
  res: ServerResponse;
  startedAt: number;
  requestId: string;
  trust: Trust;
  log: Logger;
  controller: AbortController | undefined;
  abortReason: unknown;
  /** Set by the app bridge while a handler runs: answers 503 when the deadline passes. */
  onDeadline: (() => void) | undefined;
  /** Holds a MAX_INFLIGHT_REQUESTS slot: its handler runs (probes, refusals and body uploads do not). */
  admitted: boolean;
  /** Refused by the rate limit or shedding: counted in the shedder's summary, no access line. */
  refused: boolean;
  /** The socket's peer, read when the request arrives: once the socket is gone it reads as undefined. */
  peer: string | undefined;
  /** The client address once computed: the rate limiter, the app and the access line all ask. */
  clientIp: string | undefined;
  /** Its response has closed (or its socket did, for one queued behind a pipelined answer). */
  closed: boolean;
  /** Connection: close was set on it by the drain (only the last of a pipelined socket gets it). */
  closeMarked: boolean;
  /** Bytes of its body counted against MAX_BUFFERED_BODY_BYTES, given back when it ends. */
  reservedBytes: number;
  /** The server's one drain signal (drainSignalOf). */
  drainSignal: AbortSignal;
  /** Its route's own settings, looked up once when it arrives (undefined: the server's). */
  limits: RouteLimits | undefined;
  /** Its handler has returned a Response: a body still being sent is not the handler's work. */
  answered: boolean;
  /** Its place in the list of the turn's answers whose slots are checked on the next turn; -1: none. */
  answeredAt: number;
  /** Called by the app bridge when the handler answers (one function shared by every request). */
  onAnswered: (state: RequestState) => void;
  /** Pipelined behind an unfinished answer: it runs when it reaches the head of its socket's queue. */
  deferred: boolean;
  /** It asks for a WebSocket: what upgradeWebSocket (websocket.ts) takes the socket over with. */
  upgrade: SocketUpgrade | undefined;
  /** Its socket is a WebSocket now: its access line says 101. */
  upgraded: boolean;
}

export function attachRequestState(state: RequestState): RequestState {
  (state.req as unknown as Record<symbol, RequestState>)[stateKey] = state;
  return state;
}

export function stateOf(req: IncomingMessage): RequestState | undefined {
  return (req as unknown as Record<symbol, RequestState | undefined>)[stateKey];
}

export function abortRequest(state: RequestState, reason: unknown) {
  if (state.abortReason !== undefined) return;
  state.abortReason = reason;
  state.controller?.abort(reason);
}

/**
 * What the Bun and Deno adapters (web-server.ts) hand the app as
 * `env.runway`, in place of node:http's `env.incoming`.
 */
export interface WebScope {
  requestId: string;
  log: Logger;
  clientIp: string;
  controller: AbortController;
  drainSignal: AbortSignal;
  /** Set while a streamed body is being sent: errors it, so the runtime drops the connection. */
  cut?: (() => void) | undefined;
  /** It asks for a WebSocket: what upgradeWebSocket (websocket.ts) takes the request over with. */
  upgrade?: SocketUpgrade | undefined;
}

/** The app's bindings on every runtime: node:http's `incoming`, or the web adapters' `runway`. */
export interface RunwayBindings {
  incoming?: IncomingMessage;
  runway?: WebScope;
}

/** Anything carrying the runtime bindings: a Hono context (`c`), or `{ env: { incoming } }`. */
export interface WithIncoming {
  env: unknown;
}

type Found = { state: RequestState; web?: undefined } | { state?: undefined; web: WebScope } | undefined;

function find(c: WithIncoming): Found {
  const env = c.env as RunwayBindings | undefined;
  if (env?.runway) return { web: env.runway };
  const state = env?.incoming && stateOf(env.incoming);
  return state ? { state } : undefined;
}

function requireScope(c: WithIncoming): Exclude<Found, undefined> {
  const found = find(c);
  if (!found) throw new Error('this request was not served by the runway server');
  return found;
}

/**
 * The request's AbortSignal: pass it to every query and fetch the handler
 * awaits. Outside the runway server (`app.request()` in a test) it is the
 * Web request's own signal.
 */
export function signalOf(c: WithIncoming & { req?: { raw: Request } }): AbortSignal {
  const found = find(c);
  if (!found) {
    if (c.req) return c.req.raw.signal;
    throw new Error('this request was not served by the runway server');
  }
  if (found.web) return found.web.controller.signal;
  const state = found.state;
  if (!state.controller) {
    state.controller = new AbortController();
    if (state.abortReason !== undefined) state.controller.abort(state.abortReason);
  }
  return state.controller.signal;
}

/**
 * Aborted when the drain begins (the listener closes, after SHUTDOWN_DELAY_MS),
 * with a DrainStartedError: a long-lived response (a stream, a long poll)
 * should end then, cleanly, so its client reconnects to an instance that
 * stays; a drain whose streams all ended exits 0. Not at SIGTERM: during the
 * shutdown delay the load balancer still routes here, and a client told to
 * reconnect would come back to this instance. Outside the runway server it
 * never aborts.
 */
export function drainSignalOf(c: WithIncoming): AbortSignal {
  const found = find(c);
  if (!found) return neverAborted;
  return found.web ? found.web.drainSignal : found.state.drainSignal;
}

const neverAborted = new AbortController().signal;

/**
 * The controller of an edge's one drain signal. Every stream and socket may listen to it: no cap
 * on its listeners (Node warns on stderr past 10, seen with 11 WebSockets open).
 */
export function drainController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

/**
 * Ends this request's connection now, whatever is still buffered for it:
 * for a client that does not take what it is sent (sse.ts cuts one that
 * ignores the drain's retry hint). Outside the runway server it does nothing.
 */
export function cutConnectionOf(c: WithIncoming): void {
  const found = find(c);
  if (!found) return;
  if (found.web) found.web.cut?.();
  else found.state.res.destroy();
}

/** The request id echoed in `X-Request-Id` and written on every log line of the request. */
export function requestIdOf(c: WithIncoming): string {
  const found = requireScope(c);
  return found.web ? found.web.requestId : found.state.requestId;
}

/** The client address, honouring `X-Forwarded-For` only from trusted proxies (TRUSTED_PROXIES). */
export function clientIpOf(c: WithIncoming): string {
  const found = requireScope(c);
  return found.web ? found.web.clientIp : clientIpOfState(found.state);
}

export function clientIpOfState(state: RequestState): string {
  state.clientIp ??= clientIp(state.peer, state.req.headers['x-forwarded-for'], state.trust);
  return state.clientIp;
}

/** A logger whose every line carries this request's id. */
export function loggerOf(c: WithIncoming): Logger {
  const found = requireScope(c);
  const { log, requestId } = found.web ?? found.state;
  return log.child({ requestId });
}
