import type { ProblemInit } from './problem.js';

/**
 * Every problem the runtime itself answers, in one table: its status, code
 * and detail, and the headers that go with it. Both edges (node-server.ts,
 * web-server.ts) and the app's error handler (hono-errors.ts) answer from
 * here, so the same condition reads the same on every runtime; the parity
 * test (test/runtime/edge-parity.test.ts) holds them to it.
 */

export interface ProblemAnswer {
  status: number;
  init: ProblemInit;
}

const retryIn = (seconds: number) => ({ 'retry-after': String(seconds) });

export type Overload = 'max_inflight' | 'event_loop_delay' | 'body_memory' | 'websockets';

const overloadDetail: Record<Overload, string> = {
  max_inflight: 'the server is at its limit of requests in flight; retry shortly',
  event_loop_delay: 'the server is overloaded; retry shortly',
  body_memory: 'the server is at its limit of request bodies held in memory; retry shortly',
  websockets: 'the server is at its limit of open WebSockets (or shutting down); retry shortly',
};

export const runtimeProblems = {
  internal: (): ProblemAnswer => ({
    status: 500,
    init: { code: 'internal', detail: 'the server failed to handle this request' },
  }),
  /** A request arrived while the app loads, and the handler deadline came first. */
  starting: (): ProblemAnswer => ({
    status: 503,
    init: { code: 'not_started', detail: 'the application is still starting; retry shortly', headers: retryIn(1) },
  }),
  /** The app failed to load (the process is draining), or was never given. */
  notStarted: (): ProblemAnswer => ({
    status: 503,
    init: { code: 'not_started', detail: 'the application failed to start' },
  }),
  handlerTimeout: (ms: number): ProblemAnswer => ({
    status: 503,
    init: { code: 'handler_timeout', detail: `the request did not complete within ${ms} ms` },
  }),
  /** The drain deadline aborted the request, and its handler answered in time. */
  shuttingDown: (): ProblemAnswer => ({
    status: 503,
    init: { code: 'shutting_down', detail: 'the server is shutting down; retry', headers: retryIn(1) },
  }),
  bodyTooLarge: (limit: number): ProblemAnswer => ({
    status: 413,
    init: { code: 'body_too_large', detail: `the request body is larger than ${limit} bytes` },
  }),
  requestTimeout: (): ProblemAnswer => ({
    status: 408,
    init: { code: 'request_timeout', detail: 'the request was not received in time' },
  }),
  /** Written for the record only: the client left before its request was read (the web edge's access line). */
  clientGone: (): ProblemAnswer => ({
    status: 499,
    init: { code: 'client_gone', detail: 'the client closed the connection before its request was read' },
  }),
  headersTooLarge: (): ProblemAnswer => ({
    status: 431,
    init: { code: 'headers_too_large', detail: 'the request headers are larger than the server accepts' },
  }),
  malformed: (): ProblemAnswer => ({
    status: 400,
    init: { code: 'bad_request', detail: 'the request is not valid HTTP/1.1' },
  }),
  missingHost: (): ProblemAnswer => ({
    status: 400,
    init: { code: 'bad_request', detail: 'the request must carry one valid Host header' },
  }),
  asteriskTarget: (): ProblemAnswer => ({
    status: 400,
    init: { code: 'bad_request', detail: 'the request target * is for OPTIONS only' },
  }),
  expectationFailed: (): ProblemAnswer => ({
    status: 417,
    init: { code: 'expectation_failed', detail: 'the only expectation served is 100-continue' },
  }),
  overloaded: (reason: Overload): ProblemAnswer => ({
    status: 503,
    init: { code: 'overloaded', detail: overloadDetail[reason], headers: retryIn(1) },
  }),
  /** A WebSocket route asked for without `Upgrade: websocket` (websocket.ts). */
  upgradeRequired: (): ProblemAnswer => ({
    status: 426,
    init: { code: 'upgrade_required', detail: 'this route serves WebSockets only', headers: { upgrade: 'websocket' } },
  }),
  badHandshake: (detail: string): ProblemAnswer => ({
    status: 400,
    init: { code: 'bad_websocket_handshake', detail },
  }),
  unsupportedWebSocketVersion: (): ProblemAnswer => ({
    status: 426,
    init: {
      code: 'unsupported_websocket_version',
      detail: 'the only WebSocket version served is 13',
      headers: { 'sec-websocket-version': '13' },
    },
  }),
  originNotAllowed: (): ProblemAnswer => ({
    status: 403,
    init: { code: 'origin_not_allowed', detail: 'WebSockets from this origin are not allowed (WEBSOCKET_ORIGINS)' },
  }),
  /** `Upgrade: websocket` to a route that is not a WebSocket (websocket.ts notUpgradedProblem). */
  notWebSocketRoute: (): ProblemAnswer => ({
    status: 400,
    init: { code: 'not_a_websocket_route', detail: 'this route does not accept a WebSocket upgrade' },
  }),
  rateLimited: (retryAfterSeconds: number): ProblemAnswer => ({
    status: 429,
    init: {
      code: 'rate_limited',
      detail: `too many requests from this client; retry in ${retryAfterSeconds} s`,
      headers: retryIn(retryAfterSeconds),
    },
  }),
} as const;

/** The problem for a code node:http reports in `clientError`, or undefined when nothing should be written. */
export function clientErrorProblem(code: string | undefined): ProblemAnswer | undefined {
  if (code === 'ECONNRESET' || code === 'EPIPE') return undefined;
  if (code === 'HPE_HEADER_OVERFLOW') return runtimeProblems.headersTooLarge();
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return runtimeProblems.requestTimeout();
  return runtimeProblems.malformed();
}
