import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The per-request AbortSignal handlers receive. It fires when the client goes
 * away before the response is done, or when the drain deadline is reached.
 * The controller is made only when a handler asks for it: most requests never
 * do, and an AbortController per request is measurable on the hot path.
 */

const stateKey = Symbol('runway.request');

export interface RequestState {
  res: ServerResponse;
  startedAt: number;
  controller: AbortController | undefined;
  abortReason: unknown;
}

export function attachRequestState(req: IncomingMessage, res: ServerResponse, startedAt: number): RequestState {
  const state: RequestState = { res, startedAt, controller: undefined, abortReason: undefined };
  (req as unknown as Record<symbol, RequestState>)[stateKey] = state;
  return state;
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

/** The signal of the request behind `incoming` (Hono: `c.env.incoming`). */
export function signalOf(incoming: IncomingMessage): AbortSignal {
  const state = (incoming as unknown as Record<symbol, RequestState | undefined>)[stateKey];
  if (!state) throw new Error('request was not served by the runway server');
  if (!state.controller) {
    state.controller = new AbortController();
    if (state.abortReason !== undefined) state.controller.abort(state.abortReason);
  }
  return state.controller.signal;
}
