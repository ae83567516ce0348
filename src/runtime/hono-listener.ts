import { getRequestListener, type HttpBindings } from '@hono/node-server';
import type { FetchApp } from './edge-options.js';
import type { Listener } from './node-server.js';
import { problemResponse } from './problem.js';
import type { RequestState } from './request-context.js';
import { stateOf } from './request-context.js';
import { runtimeProblems } from './runtime-problems.js';
import { notUpgradedProblem } from './websocket.js';

/**
 * Bridges node:http to the app's `fetch`, under the handler deadline.
 * Imported lazily after `listen`: @hono/node-server touches the global
 * `Request` when it loads, which costs about 20 ms of cold start
 * (docs/benchmarks.md), and /healthz does not need it.
 */
export function createAppListener(app: FetchApp, handlerTimeoutMs: number): Listener {
  return getRequestListener((request, env) => {
    const bindings = env as HttpBindings;
    const response = app.fetch(request, bindings);
    const state = stateOf(bindings.incoming);
    if (!state) return response;
    // The handler has answered: node-server.ts gives its slot back once its answer no longer sits in memory.
    if (!(response instanceof Promise)) {
      state.onAnswered(state);
      return state.upgrade ? socketAnswer(state, response) : response;
    }
    // The server's sweep calls onDeadline when the deadline passes (and
    // aborts the request signal); the handler's late answer is dropped.
    return new Promise<Response>((resolve, reject) => {
      state.onDeadline = () => {
        const { status, init } = runtimeProblems.handlerTimeout(state.limits?.handlerTimeoutMs ?? handlerTimeoutMs);
        resolve(problemResponse(status, init, state.requestId));
      };
      response.then(
        (value) => {
          state.onDeadline = undefined;
          state.onAnswered(state);
          resolve(state.upgrade ? socketAnswer(state, value) : value);
        },
        (error: unknown) => {
          state.onDeadline = undefined;
          reject(error);
        },
      );
    });
  });
}

// A request for a WebSocket that its route did not upgrade (websocket.ts notUpgradedProblem).
function socketAnswer(state: RequestState, response: Response): Response {
  const problem = !state.upgraded && notUpgradedProblem(response.status);
  return problem ? problemResponse(problem.status, problem.init, state.requestId) : response;
}
