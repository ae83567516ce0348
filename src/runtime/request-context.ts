import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientIp, type Trust } from './client-ip.js';
import type { Logger } from './logger.js';

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
  /** Counted against MAX_INFLIGHT_REQUESTS (probes and refused requests are not). */
  admitted: boolean;
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

export class ClientGoneError extends Error {
  constructor() {
    super('client closed the connection before the response was sent');
    this.name = 'ClientGoneError';
  }
}

export class HandlerTimeoutError extends Error {
  constructor(ms: number) {
    super(`handler deadline of ${ms} ms reached`);
    this.name = 'HandlerTimeoutError';
  }
}

/** Anything carrying the node:http bindings: a Hono context (`c`), or `{ env: { incoming } }`. */
export interface WithIncoming {
  env: unknown;
}

function requireState(c: WithIncoming): RequestState {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const state = incoming && stateOf(incoming);
  if (!state) throw new Error('this request was not served by the runway server');
  return state;
}

/**
 * The request's AbortSignal: pass it to every query and fetch the handler
 * awaits. Outside the runway server (`app.request()` in a test) it is the
 * Web request's own signal.
 */
export function signalOf(c: WithIncoming & { req?: { raw: Request } }): AbortSignal {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const state = incoming && stateOf(incoming);
  if (!state) {
    if (c.req) return c.req.raw.signal;
    throw new Error('this request was not served by the runway server');
  }
  if (!state.controller) {
    state.controller = new AbortController();
    if (state.abortReason !== undefined) state.controller.abort(state.abortReason);
  }
  return state.controller.signal;
}

/** The request id echoed in `X-Request-Id` and written on every log line of the request. */
export function requestIdOf(c: WithIncoming): string {
  return requireState(c).requestId;
}

/** The client address, honouring `X-Forwarded-For` only from trusted proxies (TRUSTED_PROXIES). */
export function clientIpOf(c: WithIncoming): string {
  return clientIpOfState(requireState(c));
}

export function clientIpOfState(state: RequestState): string {
  return clientIp(state.req.socket.remoteAddress, state.req.headers['x-forwarded-for'], state.trust);
}

/** A logger whose every line carries this request's id. */
export function loggerOf(c: WithIncoming): Logger {
  const state = requireState(c);
  return state.log.child({ requestId: state.requestId });
}
