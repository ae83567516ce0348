/**
 * `runway/hono`: what a Hono app uses inside runway. Each helper reads the
 * request's runtime bindings, so it works the same on node, Bun and Deno;
 * outside the runtime (`app.request()` in a test) signalOf is the request's
 * own signal and drainSignalOf never aborts.
 */
export { problemNotFound, problemOnError } from './runtime/hono-errors.js';
export { readJson, validate } from './runtime/json-body.js';
export { errorFields } from './runtime/logger.js';
export { type FieldProblem, HttpProblem, type ProblemInit, problemResponse } from './runtime/problem.js';
export {
  clientIpOf,
  cutConnectionOf,
  drainSignalOf,
  loggerOf,
  type RunwayBindings,
  requestIdOf,
  signalOf,
} from './runtime/request-context.js';
export { type EventLoop, type EventStreamOptions, lastEventIdOf, streamEvents } from './runtime/sse.js';
export { type SocketEvents, upgradeWebSocket } from './runtime/websocket.js';
