import type { App } from '../main.js';
import { ClientGoneError, HandlerTimeoutError } from './abort-reasons.js';
import { levelOf, writeAccessLine } from './access-log.js';
import { createBodyBudget } from './body-budget.js';
import { clientIp } from './client-ip.js';
import { createInFlight } from './in-flight.js';
import type { Drainable } from './lifecycle.js';
import { refusal, type ShedReason } from './load-shedder.js';
import { errorFields } from './logger.js';
import type { NodeServerOptions } from './node-server.js';
import { PROBLEM_CONTENT_TYPE, type ProblemInit, problemBody } from './problem.js';
import type { WebScope } from './request-context.js';
import { acceptRequestId } from './request-id.js';
import { securityHeaders } from './security-headers.js';

/**
 * The runtime's edge over Web-standard `Request`/`Response`, for the Bun and
 * Deno adapters (bun-server.ts, deno-server.ts): the same contract as the
 * node:http server, so the app, the lifecycle and the health checks cannot
 * tell the runtimes apart. Probes answered first and never shed; the rate
 * limit and shedding; security headers and `X-Request-Id` on every answer;
 * the body limit before the app runs (413 on a `Content-Length` over it
 * without reading, else the body is counted as it arrives, within
 * READ_TIMEOUT_MS); the handler deadline (503 + aborted signal); the request
 * signal aborted when the client goes; the access line; and the drain hooks.
 *
 * What these runtimes do not let a server enforce is in README's runtime table.
 */

export type WebServerOptions = Omit<NodeServerOptions, 'port' | 'host'>;

export interface WebHandler extends Drainable {
  handle(request: Request, peer: string): Promise<Response>;
  setApp(app: Promise<App>): void;
  /** Called by stopAccepting, for the adapter to close its listener. */
  onStopAccepting(close: () => void): void;
  /** Called after forceClose has aborted the requests, to close every connection. */
  onForceClose(close: () => void): void;
}

const encoder = new TextEncoder();
const healthBody = encoder.encode('{"status":"ok"}');
const jsonHeaders = { ...securityHeaders, 'content-type': 'application/json', 'cache-control': 'no-store' };
const securityHeaderEntries = Object.entries(securityHeaders);

interface Scope extends WebScope {
  startedAt: number;
  /** Refused after its body was read: counted in the shedder's summary, no access line. */
  refused?: boolean;
  /** Bytes of its body counted against MAX_BUFFERED_BODY_BYTES (body-budget.ts). */
  reservedBytes: number;
}

export function createWebHandler(options: WebServerOptions): WebHandler {
  const { health, log, trust, shedder, rateLimiter } = options;
  // Probes and refusals are answered without entering; the drain waits for the rest.
  const inFlight = createInFlight<Scope>();
  const bodies = createBodyBudget(options.maxBufferedBodyBytes);
  // Requests whose handler runs: what MAX_INFLIGHT_REQUESTS caps. A request
  // still sending its body holds no slot (node-server.ts says why).
  let admitted = 0;
  let closing = false;
  let app: App | undefined;
  let pending: Promise<App> | undefined;
  let closeListener: () => void = () => {};
  let closeConnections: () => void = () => {};

  // Every problem goes out through finish(), which adds the security headers.
  const problem = (status: number, init: ProblemInit, requestId?: string) =>
    new Response(JSON.stringify(problemBody(status, init, requestId)), {
      status,
      headers: { 'cache-control': 'no-store', ...init.headers, 'content-type': PROBLEM_CONTENT_TYPE },
    });

  const handle = async (request: Request, peer: string): Promise<Response> => {
    const url = request.url;
    const path = url.slice(url.indexOf('/', url.indexOf('//') + 2));
    const requestId = acceptRequestId(request.headers.get('x-request-id') ?? undefined);
    const method = request.method;
    if ((method === 'GET' || method === 'HEAD') && (isPath(path, '/healthz') || isPath(path, '/readyz'))) {
      return probe(path, method, requestId);
    }
    const scope: Scope = {
      requestId,
      log,
      clientIp: clientIp(peer, request.headers.get('x-forwarded-for') ?? undefined, trust),
      controller: new AbortController(),
      startedAt: Date.now(),
      reservedBytes: 0,
    };
    let response: Response;
    let rateHeaders: [string, string][] | undefined;
    if (rateLimiter) {
      const verdict = rateLimiter.take(scope.clientIp);
      rateHeaders = [
        ['ratelimit-policy', rateLimiter.policy],
        ['ratelimit', rateLimiter.header(verdict)],
      ];
      if (!verdict.allowed)
        return finish(refuse(request, scope, 'rate_limit', verdict.retryAfterSeconds), scope, rateHeaders);
    }
    const reason = shedder?.check(admitted);
    if (reason) return finish(refuse(request, scope, reason), scope, rateHeaders);

    inFlight.add(scope);
    // During the drain, Deno aborts every request's signal when the server's
    // own signal aborts: that is the drain, not the client going, and the
    // handler must be left to finish. The drain deadline bounds it instead.
    const onClientGone = () => {
      if (!closing) scope.controller.abort(new ClientGoneError());
    };
    request.signal.addEventListener('abort', onClientGone, { once: true });
    try {
      response = await serveApp(request, path, scope);
    } catch (error) {
      log.error('runtime error', { requestId, ...errorFields(error) });
      response = problem(500, { code: 'internal', detail: 'the server failed to handle this request' }, requestId);
    } finally {
      request.signal.removeEventListener('abort', onClientGone);
      inFlight.remove(scope);
      if (scope.reservedBytes > 0) bodies.release(scope.reservedBytes);
    }
    const done = finish(response, scope, rateHeaders);
    if (!scope.refused) logLine(request, path, done, scope);
    return done;
  };

  const serveApp = async (request: Request, path: string, scope: Scope): Promise<Response> => {
    const ready = app ?? (await loadedApp());
    if (ready === 'starting') {
      return problem(
        503,
        {
          code: 'not_started',
          detail: 'the application is still starting; retry shortly',
          headers: { 'retry-after': '1' },
        },
        scope.requestId,
      );
    }
    if (!ready) {
      return problem(503, { code: 'not_started', detail: 'the application is not loaded' }, scope.requestId);
    }
    let forApp = request;
    if (request.body && request.headers.get('content-length') !== '0') {
      // A body larger than the whole memory budget could never be held: too large.
      const limit = Math.min(ready.bodyLimitFor?.(request.method, path) ?? options.bodyLimitBytes, bodies.maxBytes);
      const declared = request.headers.get('content-length');
      const memoryRefusal = () => {
        const answer = refuse(request, scope, 'body_memory');
        scope.refused = true;
        return answer;
      };
      if (declared !== null && Number(declared) <= limit) {
        if (!bodies.reserve(Number(declared))) return memoryRefusal();
        scope.reservedBytes = Number(declared);
      }
      // A chunked body reserves as its chunks arrive.
      const reserveChunk = (bytes: number) => {
        if (!bodies.reserve(bytes)) return false;
        scope.reservedBytes += bytes;
        return true;
      };
      const outcome = await readLimited(
        request,
        limit,
        options.readTimeoutMs,
        declared === null ? reserveChunk : () => true,
      );
      if (!outcome.ok) {
        if (outcome.reason === 'timeout') {
          return problem(408, { code: 'request_timeout', detail: 'the request was not received in time' });
        }
        if (outcome.reason === 'no_memory') return memoryRefusal();
        const answer = problem(
          413,
          { code: 'body_too_large', detail: `the request body is larger than ${limit} bytes` },
          scope.requestId,
        );
        answer.headers.set('connection', 'close');
        return answer;
      }
      forApp = new Request(request.url, {
        method: request.method,
        headers: request.headers,
        body: outcome.body,
        signal: scope.controller.signal,
      });
      // The slot is taken now that the handler can run; the body is read.
      const reason = shedder?.check(admitted);
      if (reason) {
        shedder?.count(reason);
        scope.refused = true;
        const { status, init } = refusal(reason);
        return problem(status, init, scope.requestId);
      }
    }
    admitted++;
    try {
      return await withDeadline(ready, forApp, scope);
    } finally {
      admitted--;
    }
  };

  // While the app loads, a request waits for it up to the handler deadline (node-server.ts says why).
  const loadedApp = async (): Promise<App | 'starting' | undefined> => {
    if (!pending) return undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'starting'>((resolve) => {
      timer = setTimeout(() => resolve('starting'), options.handlerTimeoutMs);
    });
    try {
      return await Promise.race([pending.catch(() => undefined), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };

  const withDeadline = (ready: App, request: Request, scope: Scope): Promise<Response> => {
    const ms = options.handlerTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<Response>((resolve) => {
      timer = setTimeout(() => {
        scope.controller.abort(new HandlerTimeoutError(ms));
        resolve(
          problem(
            503,
            { code: 'handler_timeout', detail: `the request did not complete within ${ms} ms` },
            scope.requestId,
          ),
        );
      }, ms);
    });
    const answer = Promise.resolve(ready.fetch(request, { runway: scope } as never));
    return Promise.race([answer, deadline]).finally(() => clearTimeout(timer));
  };

  // A refusal never reads the body; one that announced a body closes the connection.
  const refuse = (request: Request, scope: Scope, reason: ShedReason, retryAfterSeconds?: number) => {
    shedder?.count(reason);
    const { status, init } = refusal(reason, retryAfterSeconds);
    const answer = problem(status, init, scope.requestId);
    if (request.body) answer.headers.set('connection', 'close');
    return answer;
  };

  const finish = (response: Response, scope: Scope, extra: [string, string][] | undefined): Response => {
    let out = response;
    try {
      setHeaders(out, scope.requestId, extra);
    } catch {
      // Immutable headers (a Response from fetch()): copy it once.
      out = new Response(response.body, response);
      setHeaders(out, scope.requestId, extra);
    }
    return out;
  };

  const setHeaders = (response: Response, requestId: string, extra: [string, string][] | undefined) => {
    const headers = response.headers;
    for (const [name, value] of securityHeaderEntries) headers.set(name, value);
    headers.set('x-request-id', requestId);
    if (extra) for (const [name, value] of extra) headers.set(name, value);
    if (closing) headers.set('connection', 'close');
  };

  const probe = async (path: string, method: string, requestId: string): Promise<Response> => {
    if (isPath(path, '/healthz')) {
      return new Response(method === 'HEAD' ? null : healthBody, {
        status: 200,
        headers: { ...jsonHeaders, 'x-request-id': requestId },
      });
    }
    const result = await health.readiness();
    const body = JSON.stringify({ status: result.ok ? 'ready' : 'unavailable', checks: result.checks });
    return new Response(method === 'HEAD' ? null : body, {
      status: result.ok ? 200 : 503,
      headers: { ...jsonHeaders, 'x-request-id': requestId },
    });
  };

  const logLine = (request: Request, path: string, response: Response, scope: Scope) => {
    const aborted = scope.controller.signal.reason;
    // A client that left never saw the status: 499, as node:http's line says.
    const status = aborted instanceof ClientGoneError ? 499 : response.status;
    if (!log.enabled(levelOf(status, aborted))) return;
    writeAccessLine(
      log,
      {
        requestId: scope.requestId,
        method: request.method,
        url: path,
        status,
        aborted,
        requestSize: request.headers.get('content-length') ?? undefined,
        responseSize: response.headers.get('content-length') ?? undefined,
        userAgent: request.headers.get('user-agent') ?? undefined,
        remoteIp: scope.clientIp,
        startedAt: scope.startedAt,
        protocol: 'HTTP/1.1',
        traceparent: request.headers.get('traceparent') ?? undefined,
        cloudTrace: request.headers.get('x-cloud-trace-context') ?? undefined,
      },
      options.projectId,
    );
  };

  return {
    handle,
    setApp(next) {
      pending = next;
      next.then(
        (ready) => {
          app = ready;
        },
        () => {},
      );
    },
    onStopAccepting(close) {
      closeListener = close;
    },
    onForceClose(close) {
      closeConnections = close;
    },
    stopAccepting() {
      closing = true;
      closeListener();
    },
    waitForInFlight: inFlight.wait,
    async forceClose(reason) {
      const left = await inFlight.abortAll((scope) => scope.controller.abort(reason));
      closeConnections();
      return left;
    },
  };
}

function isPath(path: string, probePath: string): boolean {
  return path === probePath || path.startsWith(`${probePath}?`);
}

type Limited =
  | { ok: true; body: Uint8Array<ArrayBuffer> }
  | { ok: false; reason: 'too_large' | 'timeout' | 'aborted' | 'no_memory' };

/**
 * Reads a body up to `limit` bytes within `timeoutMs`, each chunk taken from
 * the body budget by `reserve`; past any of them it stops reading.
 */
async function readLimited(
  request: Request,
  limit: number,
  timeoutMs: number,
  reserve: (bytes: number) => boolean,
): Promise<Limited> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) return { ok: false, reason: 'too_large' };
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void reader.cancel().catch(() => {});
  }, timeoutMs);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit || !reserve(value.byteLength)) {
        void reader.cancel().catch(() => {});
        return { ok: false, reason: size > limit ? 'too_large' : 'no_memory' };
      }
      chunks.push(value);
    }
  } catch {
    return { ok: false, reason: timedOut ? 'timeout' : 'aborted' };
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) return { ok: false, reason: 'timeout' };
  const body = new Uint8Array(new ArrayBuffer(size));
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { ok: true, body };
}
