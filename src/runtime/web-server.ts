import { ClientGoneError, DrainStartedError, HandlerTimeoutError } from './abort-reasons.js';
import { levelOf, writeAccessLine } from './access-log.js';
import { createAdmission, type Refusal } from './admission.js';
import { createBodyBudget } from './body-budget.js';
import { clientIp } from './client-ip.js';
import { startDeadlines } from './deadlines.js';
import type { CompiledApp, EdgeOptions } from './edge-options.js';
import { createInFlight } from './in-flight.js';
import type { Drainable } from './lifecycle.js';
import { errorFields } from './logger.js';
import { liveBody, probeHeaders, probeOf, readyAnswer } from './probes.js';
import { problemBody, problemHeaders } from './problem.js';
import { drainController, type WebScope } from './request-context.js';
import { acceptRequestId } from './request-id.js';
import type { RouteLimits } from './route-settings.js';
import { type ProblemAnswer, runtimeProblems } from './runtime-problems.js';
import { securityHeaders } from './security-headers.js';
import { asksForWebSocket, notUpgradedProblem, type SocketUpgrade } from './websocket.js';
import { createSocketHub, defaultSocketSettings, type SocketHub } from './websocket-hub.js';

/**
 * The runtime's edge over Web-standard `Request`/`Response`, for the Bun and
 * Deno adapters (bun-server.ts, deno-server.ts). The policies are the core's,
 * as on node:http: probes (probes.ts), admission (admission.ts), the
 * problems (runtime-problems.ts), the deadlines (deadlines.ts), the body
 * budget; this file only translates them into Requests and Responses: the
 * body limit before the app runs (413 on a `Content-Length` over it without
 * reading, else the body counted as it arrives, within READ_TIMEOUT_MS), the
 * request signal aborted when the client goes, the access line, and the
 * drain hooks. What these runtimes do not let a server enforce is in
 * docs/runtimes.md's table.
 */

export type WebServerOptions = Omit<EdgeOptions, 'port' | 'host'>;

export interface WebHandler extends Drainable {
  /** Undefined: the request is a WebSocket now (Bun: its handshake is the runtime's to send). */
  handle(request: Request, peer: string): Promise<Response | undefined>;
  /** Open WebSockets (websocket-hub.ts), for the adapter's native upgrade. */
  readonly hub: SocketHub;
  /** Set by the adapter: how it upgrades a request (bun-server.ts, deno-server.ts). */
  onUpgrade(upgrade: WebUpgrade): void;
  setApp(app: Promise<CompiledApp>): void;
  /** Called by stopAccepting, for the adapter to close its listener. */
  onStopAccepting(close: () => void): void;
  /** Called after forceClose has aborted the requests, to close every connection. */
  onForceClose(close: () => void): void;
}

const securityHeaderEntries = Object.entries(securityHeaders);

/**
 * An adapter's native WebSocket upgrade. `headers`: what the 101 carries (the request id, the
 * security and RateLimit headers). It returns the Response for the runtime to send (Deno's 101),
 * or undefined when the runtime sends the handshake itself (Bun); false when it refused.
 */
export type WebUpgrade = (
  request: Request,
  events: Parameters<SocketUpgrade['upgrade']>[0],
  meta: { requestId: string; protocol: string | undefined; headers: Headers },
) => Response | undefined | false;

interface Scope extends WebScope {
  startedAt: number;
  onDeadline: (() => void) | undefined;
  /** Refused after its body was read: counted in the shedder's summary, no access line. */
  refused: boolean;
  /** Bytes of its body counted against MAX_BUFFERED_BODY_BYTES (body-budget.ts). */
  reservedBytes: number;
  /** Its route's own settings (route-settings.ts), once the app is loaded. */
  limits: RouteLimits | undefined;
  /** Its answer is a stream still being sent: it stays in flight until the body ends. */
  streaming: boolean;
  /** It became a WebSocket: the Response its adapter sends (Deno's 101), or undefined (Bun). */
  upgraded: { response: Response | undefined } | undefined;
  /** Its request's headers, copied before an upgrade (Deno closes the request then). */
  headers?: Headers;
  /** The RateLimit fields of its admission, for every answer (the 101 included). */
  rateHeaders: [string, string][] | undefined;
}

export function createWebHandler(options: WebServerOptions): WebHandler {
  const { health, log, trust } = options;
  const admission = createAdmission(options);
  // Probes and refusals are answered without entering; the drain waits for the rest.
  const inFlight = createInFlight<Scope>();
  const bodies = createBodyBudget(options.maxBufferedBodyBytes);
  // Requests whose handler runs: what MAX_INFLIGHT_REQUESTS caps (admission.ts).
  let running = 0;
  let closing = false;
  // One signal for every request: drainSignalOf(c) (request-context.ts).
  const drain = drainController();
  let app: CompiledApp | undefined;
  let pending: Promise<CompiledApp> | undefined;
  let closeListener: () => void = () => {};
  let closeConnections: () => void = () => {};
  const hub = createSocketHub(options.websocket ?? defaultSocketSettings, log);
  let nativeUpgrade: WebUpgrade | undefined;
  // Its headers are copied as it arrives: Deno closes a request once it is upgraded, or once the
  // handler deadline answered it, and its headers then throw (the helper and the access line read them).
  const upgradeFor = (request: Request, scope: Scope): SocketUpgrade => {
    const arrived = new Headers(request.headers);
    scope.headers = arrived;
    return {
      origins: hub.settings.origins,
      method: request.method,
      headers: arrived,
      refusal() {
        if (hub.accepts()) return undefined;
        scope.refused = true;
        return admission.refuse('websockets');
      },
      upgrade(events, protocol) {
        if (!nativeUpgrade) return problem(runtimeProblems.internal(), scope.requestId);
        // The deadline answered it, or the client left, while the app's middleware ran: nothing to upgrade.
        if (scope.controller.signal.aborted) return problem(runtimeProblems.clientGone(), scope.requestId);
        const headers = new Headers();
        setHeaders(headers, scope.requestId, scope.rateHeaders);
        // Set first: Deno aborts the request's signal as it upgrades, which is not the client going.
        scope.upgraded = { response: undefined };
        let response: Response | undefined | false;
        try {
          response = nativeUpgrade(request, events, { requestId: scope.requestId, protocol, headers });
        } catch {
          response = false;
        }
        if (response === false) {
          scope.upgraded = undefined;
          return problem(runtimeProblems.badHandshake('the runtime refused it'), scope.requestId);
        }
        scope.upgraded.response = response;
        // A placeholder for the app's middleware: handle() answers with scope.upgraded instead.
        return new Response(null);
      },
    };
  };
  const deadlines = startDeadlines<Scope>({
    items: inFlight.items,
    handlerTimeoutMs: options.handlerTimeoutMs,
    onHandlerDeadline: (scope) =>
      scope.controller.abort(new HandlerTimeoutError(scope.limits?.handlerTimeoutMs ?? options.handlerTimeoutMs)),
  });

  // Every problem goes out through finish(), which adds the security headers.
  const problem = ({ status, init }: ProblemAnswer, requestId: string) =>
    new Response(JSON.stringify(problemBody(status, init, requestId)), { status, headers: problemHeaders(init) });

  const handle = async (request: Request, peer: string): Promise<Response | undefined> => {
    const url = request.url;
    const path = url.slice(url.indexOf('/', url.indexOf('//') + 2));
    const requestId = acceptRequestId(request.headers.get('x-request-id') ?? undefined);
    const probe = probeOf(request.method, path);
    if (probe) return answerProbe(probe, request.method, requestId);
    const scope: Scope = {
      requestId,
      log,
      clientIp: clientIp(peer, request.headers.get('x-forwarded-for') ?? undefined, trust),
      controller: new AbortController(),
      drainSignal: drain.signal,
      startedAt: Date.now(),
      onDeadline: undefined,
      refused: false,
      reservedBytes: 0,
      limits: undefined,
      streaming: false,
      upgraded: undefined,
      rateHeaders: undefined,
    };
    if (asksForWebSocket(request.headers.get('upgrade'))) scope.upgrade = upgradeFor(request, scope);
    const verdict = admission.arrive(() => scope.clientIp, running);
    scope.rateHeaders = verdict.rateHeaders;
    if (verdict.refusal) return finish(refused(request, scope, verdict.refusal), scope, verdict.rateHeaders);

    inFlight.add(scope);
    // During the drain, Deno aborts every request's signal when the server's
    // own signal aborts: that is the drain, not the client going, and the
    // handler must be left to finish. The drain deadline bounds it instead.
    const onClientGone = () => {
      if (!closing && !scope.upgraded) scope.controller.abort(new ClientGoneError());
    };
    request.signal.addEventListener('abort', onClientGone, { once: true });
    let response: Response;
    try {
      response = await serveApp(request, scope);
    } catch (error) {
      log.error('runtime error', { requestId, ...errorFields(error) });
      response = problem(runtimeProblems.internal(), requestId);
    } finally {
      request.signal.removeEventListener('abort', onClientGone);
      if (scope.reservedBytes > 0) bodies.release(scope.reservedBytes);
    }
    if (scope.upgraded) {
      inFlight.remove(scope);
      logLine(request, path, undefined, scope);
      return scope.upgraded.response;
    }
    if (scope.upgrade) {
      // Asked for a WebSocket of a route that is not one (websocket.ts notUpgradedProblem).
      const wrongRoute = notUpgradedProblem(response.status);
      if (wrongRoute) response = problem(wrongRoute, requestId);
    }
    const done = finish(response, scope, verdict.rateHeaders);
    if (!scope.refused) logLine(request, path, done, scope);
    if (!isStream(done)) {
      inFlight.remove(scope);
      return done;
    }
    return tracked(done, scope);
  };

  // A stream's body is the runtime's to send once handle() returns: read
  // through this wrapper, its request stays in flight until the body ends or
  // the client cancels it, so the drain waits for it (and counts it at the
  // deadline) as on node:http. A client that goes mid-stream aborts its signal.
  const tracked = (response: Response, scope: Scope): Response => {
    scope.streaming = true;
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      inFlight.remove(scope);
    };
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        scope.cut = () => {
          end();
          controller.error(new Error('connection cut'));
          void reader.cancel().catch(() => {});
        };
      },
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            end();
            controller.close();
          } else {
            controller.enqueue(value);
          }
        } catch (error) {
          end();
          controller.error(error);
        }
      },
      cancel(reason) {
        end();
        if (!closing) scope.controller.abort(new ClientGoneError());
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };

  const serveApp = async (request: Request, scope: Scope): Promise<Response> => {
    const ready = app ?? (await loadedApp(scope));
    if (ready === 'starting') return problem(runtimeProblems.starting(), scope.requestId);
    if (!ready) return problem(runtimeProblems.notStarted(), scope.requestId);
    if (ready.limitsFor) scope.limits = ready.limitsFor(request.method, request.url);
    let forApp = request;
    if (request.body && request.headers.get('content-length') !== '0') {
      const body = await readBody(request, scope);
      if (body instanceof Response) return body;
      forApp = new Request(request.url, {
        method: request.method,
        headers: request.headers,
        body,
        signal: scope.controller.signal,
      });
      // The body is in: the cap and the loop delay again (a slow upload held no slot).
      const refusal = admission.again(running);
      if (refusal) {
        scope.refused = true;
        return problem(refusal, scope.requestId);
      }
    }
    running++;
    try {
      return await runHandler(ready, forApp, scope);
    } finally {
      running--;
    }
  };

  // The body within its limit and the body budget, or the answer that refuses it.
  const readBody = async (request: Request, scope: Scope) => {
    // A body larger than the whole memory budget could never be held: too large.
    const limit = Math.min(scope.limits?.bodyLimitBytes ?? options.bodyLimitBytes, bodies.maxBytes);
    const declared = request.headers.get('content-length');
    if (declared !== null && Number(declared) <= limit) {
      if (!bodies.reserve(Number(declared))) return refused(request, scope, admission.refuse('body_memory'));
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
    if (outcome.ok) return outcome.body;
    // The rest of a body cut short is still on the wire: the connection goes, as on node (edge-parity.test.ts).
    if (outcome.reason === 'timeout') return closeAfter(problem(runtimeProblems.requestTimeout(), scope.requestId));
    if (outcome.reason === 'no_memory') return refused(request, scope, admission.refuse('body_memory'));
    if (outcome.reason === 'aborted') {
      // Nobody reads this answer: the access line records the client that left.
      scope.controller.abort(new ClientGoneError());
      return problem(runtimeProblems.clientGone(), scope.requestId);
    }
    return closeAfter(problem(runtimeProblems.bodyTooLarge(limit), scope.requestId));
  };

  const closeAfter = (answer: Response) => {
    answer.headers.set('connection', 'close');
    return answer;
  };

  // While the app loads, a request waits for it up to the handler deadline (the sweep calls onDeadline).
  const loadedApp = (scope: Scope): Promise<CompiledApp | 'starting' | undefined> => {
    if (!pending) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      scope.onDeadline = () => resolve('starting');
      (pending as Promise<CompiledApp>).then(
        (ready) => {
          scope.onDeadline = undefined;
          resolve(ready);
        },
        () => {
          scope.onDeadline = undefined;
          resolve(undefined);
        },
      );
    });
  };

  // The app's answer, or 503 `handler_timeout` when the sweep finds the deadline passed first.
  const runHandler = (ready: CompiledApp, request: Request, scope: Scope): Promise<Response> =>
    new Promise((resolve, reject) => {
      scope.onDeadline = () =>
        resolve(
          problem(
            runtimeProblems.handlerTimeout(scope.limits?.handlerTimeoutMs ?? options.handlerTimeoutMs),
            scope.requestId,
          ),
        );
      Promise.resolve(ready.fetch(request, { runway: scope })).then(
        (value) => {
          scope.onDeadline = undefined;
          resolve(value);
        },
        (error: unknown) => {
          scope.onDeadline = undefined;
          reject(error);
        },
      );
    });

  // A refusal never reads the body; one that announced a body closes the connection.
  const refused = (request: Request, scope: Scope, refusal: Refusal) => {
    scope.refused = true;
    const answer = problem(refusal, scope.requestId);
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

  const setHeaders = (target: Response | Headers, requestId: string, extra: [string, string][] | undefined) => {
    const headers = target instanceof Headers ? target : target.headers;
    // The app's own value wins, as on the node edge (node-response.ts): a stricter HSTS, its own request id.
    for (const [name, value] of securityHeaderEntries) if (!headers.has(name)) headers.set(name, value);
    if (!headers.has('x-request-id')) headers.set('x-request-id', requestId);
    if (extra) for (const [name, value] of extra) if (!headers.has(name)) headers.set(name, value);
    if (closing) headers.set('connection', 'close');
  };

  const answerProbe = async (probe: 'live' | 'ready', method: string, requestId: string): Promise<Response> => {
    const headers: Record<string, string> = { ...probeHeaders, 'x-request-id': requestId };
    if (closing) headers.connection = 'close';
    if (probe === 'live') return new Response(method === 'HEAD' ? null : liveBody, { status: 200, headers });
    const { status, body } = readyAnswer(await health.readiness());
    return new Response(method === 'HEAD' ? null : body, { status, headers });
  };

  // `response` undefined: the request became a WebSocket (101).
  const logLine = (request: Request, path: string, response: Response | undefined, scope: Scope) => {
    const aborted = scope.controller.signal.reason;
    // A client that left never saw the status: 499, as node:http's line says.
    const status = aborted instanceof ClientGoneError ? 499 : (response?.status ?? 101);
    if (!log.enabled(levelOf(status, aborted))) return;
    const headers = scope.headers ?? request.headers;
    writeAccessLine(
      log,
      {
        requestId: scope.requestId,
        method: request.method,
        url: path,
        status,
        aborted,
        requestSize: headers.get('content-length') ?? undefined,
        responseSize: response?.headers.get('content-length') ?? undefined,
        userAgent: headers.get('user-agent') ?? undefined,
        remoteIp: scope.clientIp,
        startedAt: scope.startedAt,
        protocol: 'HTTP/1.1',
        traceparent: headers.get('traceparent') ?? undefined,
        cloudTrace: headers.get('x-cloud-trace-context') ?? undefined,
      },
      options.projectId,
    );
  };

  return {
    handle,
    hub,
    onUpgrade(upgrade) {
      nativeUpgrade = upgrade;
    },
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
      drain.abort(new DrainStartedError());
      // After the drain signal: an app that listens to it sends its last message before the 1001.
      hub.drain();
      closeListener();
    },
    async waitForInFlight(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      if (!(await inFlight.wait(timeoutMs))) return false;
      // WebSockets: their closing handshakes, or the hub's drop after CLOSE_WAIT_MS.
      return hub.wait(Math.max(0, deadline - Date.now()));
    },
    async forceClose(reason) {
      let streams = 0;
      for (const scope of inFlight.items) if (scope.streaming) streams++;
      const requests = await inFlight.abortAll((scope) => scope.controller.abort(reason));
      // Told 1001 at the drain's start: one still open did not answer it; it goes uncounted.
      hub.terminateAll();
      closeConnections();
      deadlines.stop();
      return { requests, streams };
    },
  };
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

/**
 * Answers the edge tracks as streams (in flight until the body ends, counted
 * at the drain deadline, cut with their connection): Hono's streamSSE and
 * streamText mark theirs `Transfer-Encoding: chunked`, and server-sent events
 * are typed. Another body (Hono's `stream()` says nothing of its length) is
 * not tracked here; the drain still waits for it to be sent, through the
 * server's own graceful stop (bun-server.ts, deno-server.ts).
 */
function isStream(response: Response): boolean {
  if (response.body === null) return false;
  const headers = response.headers;
  return (
    headers.get('transfer-encoding') === 'chunked' ||
    (headers.get('content-type') ?? '').startsWith('text/event-stream')
  );
}
