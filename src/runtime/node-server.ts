import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ClientGoneError, HandlerTimeoutError, WriteTimeoutError } from './abort-reasons.js';
import { logAccess } from './access-log.js';
import type { Trust } from './client-ip.js';
import type { Health } from './health.js';
import { createInFlight } from './in-flight.js';
import type { Drainable } from './lifecycle.js';
import { type LoadShedder, refusal, type ShedReason } from './load-shedder.js';
import { errorFields, type Logger } from './logger.js';
import { PROBLEM_CONTENT_TYPE, type ProblemInit, problemBody } from './problem.js';
import type { RateLimiter } from './rate-limit.js';
import { announcesBody, declaredTooLarge, readBody } from './request-body.js';
import { abortRequest, attachRequestState, clientIpOfState, type RequestState } from './request-context.js';
import { acceptRequestId } from './request-id.js';
import { securityHeaderLines, securityHeaders } from './security-headers.js';

/**
 * The node:http server and its timeouts. The seed design's four Go timeouts
 * map onto Node like this:
 *   ReadHeaderTimeout -> `headersTimeout` (slowloris: headers trickled in)
 *   ReadTimeout       -> `requestTimeout` (the whole request, body included)
 *   WriteTimeout      -> nothing in Node; done here: a response not finished
 *                        `writeTimeoutMs` after its headers arrived has its
 *                        socket destroyed, which frees what was buffered for it
 *   IdleTimeout       -> `keepAliveTimeout`. It must exceed the load
 *                        balancer's idle timeout (ALB 60 s) so the LB closes
 *                        first and never reuses a socket we just closed.
 * Node checks header and request timeouts on a sweep that runs every
 * `connectionsCheckingInterval` (30 s by default, so a 5 s header timeout
 * could cut at 35 s). We sweep at a tenth of the shortest timeout instead.
 * Headers over Node's 16 KiB `maxHeaderSize` are answered 431 by Node's parser.
 *
 * The handler deadline (`handlerTimeoutMs`) is the other level the seed
 * design asks for: it bounds the app's work, not the connection. When it
 * passes, the request signal aborts and the client gets a 503 problem.
 */

export type Listener = (req: IncomingMessage, res: ServerResponse) => unknown;
export type BodyLimitFor = (method: string, url: string) => number | undefined;

export interface NodeServerOptions {
  host?: string | undefined;
  port: number;
  readHeaderTimeoutMs: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  idleTimeoutMs: number;
  handlerTimeoutMs: number;
  bodyLimitBytes: number;
  trust: Trust;
  projectId?: string | undefined;
  logHealthChecks: boolean;
  health: Health;
  log: Logger;
  /** Refuses new requests past the in-flight cap or while the event loop is overloaded. */
  shedder?: LoadShedder | undefined;
  /** Per-client token buckets (RATE_LIMIT_RPS). */
  rateLimiter?: RateLimiter | undefined;
}

export interface NodeServer extends Drainable {
  readonly server: Server;
  listen(signal: AbortSignal): Promise<AddressInfo>;
  /** Serve everything that is not a health probe with `listener`. Until then such requests wait. */
  setListener(listener: Listener | Promise<Listener>): void;
  /** Per-route body limits from the app; `undefined` from it means BODY_LIMIT_BYTES. */
  setBodyLimits(limitFor: BodyLimitFor | undefined): void;
  readonly inFlight: number;
}

const HEALTH_PATH = '/healthz';
const READY_PATH = '/readyz';
// After a 413 the socket stays half-open this long, so the client reads our
// answer rather than a reset, then it goes.
const LINGER_MS = 1_000;

const stateKey = Symbol('runway.state');
const healthBody = Buffer.from('{"status":"ok"}');
const jsonHeaders = { ...securityHeaders, 'content-type': 'application/json', 'cache-control': 'no-store' };
// Computed once: /healthz is probed often and must cost next to nothing.
const healthHeaders = { ...jsonHeaders, 'content-length': healthBody.length };
const securityHeaderEntries = Object.entries(securityHeaders);

type StatefulResponse = ServerResponse & { [stateKey]?: RequestState };

export function sweepIntervalMs(...timeoutsMs: number[]): number {
  return Math.min(1_000, Math.max(50, Math.floor(Math.min(...timeoutsMs) / 10)));
}

function isProbe(url: string): boolean {
  return (
    url === HEALTH_PATH || url === READY_PATH || url.startsWith(`${HEALTH_PATH}?`) || url.startsWith(`${READY_PATH}?`)
  );
}

export function createNodeServer(options: NodeServerOptions): NodeServer {
  const { health, log, trust, shedder, rateLimiter } = options;
  const inFlight = createInFlight<RequestState>();
  // Requests whose handler runs: what MAX_INFLIGHT_REQUESTS caps.
  let admitted = 0;
  // Every open connection: the drain waits for all of them, not only for the
  // requests in flight, because a connection whose request is still arriving
  // has no request yet (see stopAccepting).
  const connections = createInFlight<Socket>();
  let closing = false;
  let listener: Listener | undefined;
  let pending: Promise<Listener> | undefined;
  let bodyLimitFor: BodyLimitFor | undefined;

  // One shared 'close' listener, not a closure per request: it is on the hot path.
  function onResponseClose(this: StatefulResponse) {
    const state = this[stateKey] as RequestState;
    inFlight.remove(state);
    if (state.admitted) admitted--;
    if (!this.writableFinished) abortRequest(state, new ClientGoneError());
    // Refused requests (shed, rate-limited) have no access line: they are
    // counted in the shedder's summary, one line a second at most, so a
    // flood does not turn into a flood of log lines.
    if (isProbe(state.req.url ?? '') ? options.logHealthChecks : !state.refused) {
      logAccess(log, state, options.projectId);
    }
    if (closing) {
      // A response that started before the drain went out keep-alive; its
      // socket is idle now and must not outlive the server.
      server.closeIdleConnections();
    }
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const state = attachRequestState({
      req,
      res,
      startedAt: Date.now(),
      requestId: acceptRequestId(req.headers['x-request-id']),
      trust,
      log,
      controller: undefined,
      abortReason: undefined,
      onDeadline: undefined,
      admitted: false,
      refused: false,
      peer: req.socket.remoteAddress,
      clientIp: undefined,
    });
    (res as StatefulResponse)[stateKey] = state;
    inFlight.add(state);
    res.on('close', onResponseClose);
    if (closing) res.setHeader('connection', 'close');

    const url = req.url ?? '';
    if ((req.method === 'GET' || req.method === 'HEAD') && isProbe(url)) {
      if (url.startsWith(HEALTH_PATH)) return serveLiveness(state);
      return void serveReadiness(state).catch(internalError(state));
    }
    for (const [name, value] of securityHeaderEntries) res.setHeader(name, value);
    res.setHeader('x-request-id', state.requestId);
    if (rateLimiter && !takeToken(state, rateLimiter)) return;
    if (shedder) {
      const reason = shedder.check(admitted);
      if (reason) return refuse(state, reason);
    }
    if (announcesBody(req)) return void readThenDispatch(state).catch(internalError(state));
    admit(state);
    dispatch(state);
  };

  // A request takes a slot when its handler is about to run, not while its
  // body is still on the wire: slow uploads (bounded by READ_TIMEOUT_MS and
  // the body limit) must not fill a cap meant for handlers, or a few slow
  // clients refuse everyone else while /readyz stays 200.
  const admit = (state: RequestState) => {
    state.admitted = true;
    admitted++;
  };

  // The client's own limit comes first: one client over it is told 429
  // (its doing), not 503 (ours). The RateLimit fields go on every answer.
  const takeToken = (state: RequestState, limiter: RateLimiter): boolean => {
    const verdict = limiter.take(clientIpOfState(state));
    state.res.setHeader('ratelimit-policy', limiter.policy);
    state.res.setHeader('ratelimit', limiter.header(verdict));
    if (verdict.allowed) return true;
    refuse(state, 'rate_limit', verdict.retryAfterSeconds);
    return false;
  };

  const refuse = (state: RequestState, reason: ShedReason, retryAfterSeconds?: number) => {
    shedder?.count(reason);
    state.refused = true;
    const { status, init } = refusal(reason, retryAfterSeconds);
    refuseUnread(state, status, init);
  };

  // A refusal never reads the body. A request that announced one gets
  // `Connection: close` and the lingering close of a 413, since the body
  // still on the wire would otherwise be read to reuse the socket.
  const refuseUnread = (state: RequestState, status: number, init: ProblemInit) => {
    if (announcesBody(state.req)) closeAfterAnswer(state.req, state.res);
    respondProblem(state.res, status, init);
  };

  // A bug in the runtime's own async paths (or in the app's bodyLimitFor)
  // answers this one request with a 500, instead of becoming an unhandled
  // rejection that drains the whole process.
  const internalError = (state: RequestState) => (error: unknown) => {
    log.error('runtime error', { requestId: state.requestId, ...errorFields(error) });
    respondProblem(state.res, 500, { code: 'internal', detail: 'the server failed to handle this request' });
  };

  const dispatch = (state: RequestState) => {
    if (listener) return listener(state.req, state.res);
    void loadedApp(state).then((ready) => ready?.(state.req, state.res));
  };

  // While the app loads (a fast import, or a start-up waiting for a database
  // that is down) a request waits for it, up to the handler deadline: then it
  // is answered 503 `not_started` (the sweep calls onDeadline), never held
  // until the write timeout destroys its socket.
  const loadedApp = (state: RequestState): Promise<Listener | undefined> => {
    if (listener) return Promise.resolve(listener);
    if (!pending) {
      refuseUnread(state, 503, { code: 'not_started', detail: 'the application is not loaded' });
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      state.onDeadline = () => {
        refuseUnread(state, 503, {
          code: 'not_started',
          detail: 'the application is still starting; retry shortly',
          headers: { 'retry-after': '1' },
        });
        resolve(undefined);
      };
      (pending as Promise<Listener>).then(
        (ready) => {
          // Undefined: the deadline came first and answered.
          if (!state.onDeadline) return resolve(undefined);
          state.onDeadline = undefined;
          resolve(ready);
        },
        () => {
          if (state.onDeadline) {
            state.onDeadline = undefined;
            refuseUnread(state, 503, { code: 'not_started', detail: 'the application failed to start' });
          }
          resolve(undefined);
        },
      );
    });
  };

  const limitFor = (req: IncomingMessage) =>
    bodyLimitFor?.(req.method ?? 'GET', req.url ?? '/') ?? options.bodyLimitBytes;

  const readThenDispatch = async (state: RequestState) => {
    const { req, res } = state;
    // Route limits come with the app: a body that arrives while it loads waits for them.
    // Once it is loaded the check below runs in the same turn as the headers: an await
    // here first let oversized uploads push more of their bodies in before the 413
    // paused them (measured: 35 MB of RSS instead of 11 under 20 x 1 GiB uploads).
    if (!listener && !(await loadedApp(state))) return;
    const limit = limitFor(req);
    if (declaredTooLarge(req, limit)) return refuseTooLarge(req, res, limit);
    const outcome = await readBody(req, limit);
    if (!outcome.ok) {
      if (outcome.reason === 'too_large') refuseTooLarge(req, res, limit);
      return;
    }
    // The slot is taken now that the handler can run (see admit); the body is
    // read, so a refusal here leaves the connection reusable.
    const reason = shedder?.check(admitted);
    if (reason) {
      shedder?.count(reason);
      state.refused = true;
      const { status, init } = refusal(reason);
      return respondProblem(res, status, init);
    }
    (req as IncomingMessage & { rawBody?: Buffer }).rawBody = outcome.body;
    admit(state);
    dispatch(state);
  };

  const refuseTooLarge = (req: IncomingMessage, res: ServerResponse, limit: number) => {
    closeAfterAnswer(req, res);
    respondProblem(res, 413, { code: 'body_too_large', detail: `the request body is larger than ${limit} bytes` });
  };

  const closeAfterAnswer = (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('connection', 'close');
    // A lingering close: Node would destroy the socket right after the 413,
    // and with the client still sending, the kernel answers with a reset that
    // can wipe the 413 before the client reads it. Instead: send FIN and
    // destroy after LINGER_MS, time enough for the client to read the answer.
    // Reading nothing more also keeps memory flat: a read marks the body as
    // consumed, so Node does not pull the rest off the wire to discard it;
    // it waits in the kernel's buffers until the socket goes.
    req.pause();
    req.read(0);
    const socket = res.socket;
    if (socket) {
      socket.destroySoon = () => {
        socket.end();
      };
      res.once('finish', () => {
        setTimeout(() => socket.destroy(), LINGER_MS).unref();
      });
    }
  };

  const respondProblem = (res: ServerResponse, status: number, init: ProblemInit) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const state = (res as StatefulResponse)[stateKey];
    const body = JSON.stringify(problemBody(status, init, state?.requestId));
    res.writeHead(status, {
      ...init.headers,
      'content-type': PROBLEM_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  };

  // Probes pass every header to one writeHead call: half the header
  // validation work of setHeader-then-writeHead, on the most frequent request.
  const serveLiveness = ({ req, res, requestId }: RequestState) => {
    res.writeHead(200, { ...healthHeaders, 'x-request-id': requestId });
    res.end(req.method === 'HEAD' ? undefined : healthBody);
  };

  const serveReadiness = async ({ req, res, requestId }: RequestState) => {
    const result = await health.readiness();
    const body = Buffer.from(JSON.stringify({ status: result.ok ? 'ready' : 'unavailable', checks: result.checks }));
    res.writeHead(result.ok ? 200 : 503, { ...jsonHeaders, 'content-length': body.length, 'x-request-id': requestId });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const server = createServer(
    {
      headersTimeout: options.readHeaderTimeoutMs,
      requestTimeout: options.readTimeoutMs,
      keepAliveTimeout: options.idleTimeoutMs,
      connectionsCheckingInterval: sweepIntervalMs(options.readHeaderTimeoutMs, options.readTimeoutMs),
    },
    onRequest,
  );

  // `Expect: 100-continue`: refuse an oversized body before the client sends it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    let invite = false;
    try {
      invite = !declaredTooLarge(req, limitFor(req));
    } catch {
      // onRequest meets the same error and answers 500.
    }
    if (invite) res.writeContinue();
    onRequest(req, res);
  });

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const status = clientErrorStatus(error.code);
    if (status) {
      log.debug('client error', { code: error.code, status });
      answerOnSocket(socket, status, clientErrorProblem(error.code));
    }
    socket.destroy();
  });

  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.remove(socket));
  });

  // Write timeout and handler deadline: one sweep over the requests in flight,
  // not two timers per request.
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const state of inFlight.items) {
        const age = now - state.startedAt;
        if (state.onDeadline && age >= options.handlerTimeoutMs) {
          const answer = state.onDeadline;
          state.onDeadline = undefined;
          abortRequest(state, new HandlerTimeoutError(options.handlerTimeoutMs));
          answer();
        }
        if (age >= options.writeTimeoutMs) {
          log.warn('write timeout, closing connection', {
            requestId: state.requestId,
            writeTimeoutMs: options.writeTimeoutMs,
          });
          abortRequest(state, new WriteTimeoutError(options.writeTimeoutMs));
          state.res.destroy();
        }
      }
    },
    sweepIntervalMs(options.writeTimeoutMs, options.handlerTimeoutMs),
  );
  sweep.unref();
  server.once('close', () => clearInterval(sweep));

  return {
    server,
    get inFlight() {
      return inFlight.items.size;
    },
    listen(signal) {
      return new Promise((resolve, reject) => {
        if (signal.aborted) return reject(new Error('shutdown started before listen'));
        server.once('error', reject);
        // The lifecycle's stop-accepting signal closes the listener (Node's listen `signal`).
        server.listen({ port: options.port, host: options.host, signal }, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    setListener(next) {
      if (typeof next === 'function') {
        listener = next;
        return;
      }
      pending = next;
      next.then(
        (ready) => {
          listener = ready;
        },
        () => {},
      );
    },
    setBodyLimits(limitFor) {
      bodyLimitFor = limitFor;
    },
    stopAccepting() {
      closing = true;
      // Requests already read but not yet answered go out with Connection: close.
      for (const state of inFlight.items) {
        if (!state.res.headersSent) state.res.setHeader('connection', 'close');
      }
      if (server.listening) server.close();
      // Closes the connections whose parser is between requests. One whose
      // request has started arriving is left: its request gets an answer with
      // Connection: close once its headers complete. server.close() stopped
      // Node's own header-timeout sweep, so the header bound is kept here:
      // whatever is still mid-headers after READ_HEADER_TIMEOUT_MS was
      // already over it and gets the 408 Node would have sent.
      server.closeIdleConnections();
      setTimeout(() => {
        for (const socket of connections.items) {
          const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
          if (current) continue;
          answerOnSocket(socket, 408, clientErrorProblem('ERR_HTTP_REQUEST_TIMEOUT'));
          socket.destroySoon();
        }
      }, options.readHeaderTimeoutMs).unref();
    },
    async waitForInFlight(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      if (!(await inFlight.wait(timeoutMs))) return false;
      // A request whose headers arrive now still gets its answer (Connection:
      // close) and its socket closes after it; the process must not exit first.
      return connections.wait(Math.max(0, deadline - Date.now()));
    },
    async forceClose(reason) {
      const left = await inFlight.abortAll((state) => abortRequest(state, reason));
      server.closeAllConnections();
      return left;
    },
  };
}

/** A problem answer written straight to a socket that has no response object (client errors, the drain). */
function answerOnSocket(socket: Socket, status: number, init: ProblemInit) {
  const pendingResponse = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  if (!socket.writable || pendingResponse?.headersSent) return;
  const body = JSON.stringify(problemBody(status, init));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n${securityHeaderLines}\r\n${body}`,
  );
}

function clientErrorStatus(code: string | undefined): number | undefined {
  if (code === 'ECONNRESET' || code === 'EPIPE') return undefined;
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

function clientErrorProblem(code: string | undefined): ProblemInit {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return { code: 'headers_too_large', detail: 'the request headers are larger than the server accepts' };
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return { code: 'request_timeout', detail: 'the request was not received in time' };
  return { code: 'bad_request', detail: 'the request is not valid HTTP/1.1' };
}
