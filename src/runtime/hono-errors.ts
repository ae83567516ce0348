import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { PatternRouter } from 'hono/router/pattern-router';
import { DrainTimeoutError, HandlerTimeoutError, RequestAbortedError } from './abort-reasons.js';
import { errorFields, type Logger } from './logger.js';
import { HttpProblem, problemResponse } from './problem.js';
import { requestIdOf } from './request-context.js';
import { runtimeProblems } from './runtime-problems.js';

/**
 * The app's one error handler and its 404/405 answers, all problem+json.
 * Known errors (HttpProblem, Hono's HTTPException) are answered as they are;
 * anything else is a generic 500 while the cause and its stack go to the log
 * with the request id. Internal details never reach the client. An error that
 * is the runtime's own abort of the request (the client left, a deadline:
 * abort-reasons.ts) is answered without a log line: the access line records it.
 */

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

function idOf(c: Context): string | undefined {
  try {
    return requestIdOf(c);
  } catch {
    return undefined; // served in memory by app.request() in a test
  }
}

/**
 * `mapError` turns errors the app knows (a database that is down) into a
 * problem; anything it returns undefined for is handled as below.
 */
export function problemOnError(log: Logger, mapError?: (error: unknown) => HttpProblem | undefined) {
  return function onError(thrown: Error, c: Context): Response {
    const requestId = idOf(c);
    if (thrown instanceof RequestAbortedError) return abortedAnswer(thrown, requestId);
    const error = mapError?.(thrown) ?? thrown;
    if (error instanceof HttpProblem) {
      const { status, code, message: detail, errors, headers } = error;
      return problemResponse(status, { code, detail, errors, headers }, requestId);
    }
    if (error instanceof HTTPException && error.status < 500) {
      const status = error.status;
      const headers: Record<string, string> = {};
      // Hono's jwt and bearer-auth put the challenge on their own response.
      const challenge = error.res?.headers.get('www-authenticate');
      if (challenge) headers['www-authenticate'] = challenge;
      return problemResponse(
        status,
        { code: `http_${status}`, detail: error.message || 'request rejected', headers },
        requestId,
      );
    }
    log.error('unhandled error', { requestId, ...errorFields(error) });
    const { status, init } = runtimeProblems.internal();
    return problemResponse(status, init, requestId);
  };
}

// A drain-deadline answer reaches the client; the runtime already answered a
// handler timeout; after a client left or a write timeout nobody reads one.
function abortedAnswer(error: RequestAbortedError, requestId: string | undefined): Response {
  const { status, init } =
    error instanceof DrainTimeoutError
      ? runtimeProblems.shuttingDown()
      : error instanceof HandlerTimeoutError
        ? runtimeProblems.handlerTimeout(0)
        : runtimeProblems.clientGone();
  // The deadline's own text, with its number, rather than the catalogue's.
  return problemResponse(
    status,
    error instanceof HandlerTimeoutError ? { ...init, detail: error.message } : init,
    requestId,
  );
}

/** 404 for an unknown path; 405 with `Allow` when the path exists under other methods. */
export function problemNotFound(app: { routes: { method: string; path: string }[] }) {
  let router: PatternRouter<true> | undefined;
  const allowedMethods = (path: string): string[] => {
    if (!router) {
      router = new PatternRouter<true>();
      for (const route of app.routes) if (route.method !== 'ALL') router.add(route.method, route.path, true);
    }
    const found = router;
    return METHODS.filter((method) => found.match(method, path)[0].length > 0);
  };
  return function notFound(c: Context): Response {
    const allow = allowedMethods(c.req.path);
    if (allow.length > 0) {
      if (allow.includes('GET') && !allow.includes('HEAD')) allow.push('HEAD');
      return problemResponse(
        405,
        {
          code: 'method_not_allowed',
          detail: `${c.req.method} is not allowed here`,
          headers: { allow: allow.join(', ') },
        },
        idOf(c),
      );
    }
    return problemResponse(404, { code: 'not_found', detail: 'no route matches this path' }, idOf(c));
  };
}
