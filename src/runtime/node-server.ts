import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { ClientGoneError, HandlerTimeoutError, RequestTimeoutError, WriteTimeoutError } from './abort-reasons.js';
import { logAccess } from './access-log.js';
import { createBodyBudget } from './body-budget.js';
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
  /** MAX_BUFFERED_BODY_BYTES: all bodies held in memory together (body-budget.ts); 0 = no bound. */
  maxBufferedBodyBytes: number;
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
const queueKey = Symbol('runway.queue');
const healthBody = Buffer.from('{"status":"ok"}');
const jsonHeaders = { ...securityHeaders, 'content-type': 'application/json', 'cache-control': 'no-store' };
// Computed once: /healthz is probed often and must cost next to nothing.
const healthHeaders = { ...jsonHeaders, 'content-length': healthBody.length };
const securityHeaderEntries = Object.entries(securityHeaders);

type StatefulResponse = ServerResponse & { [stateKey]?: RequestState };
/** The requests of a socket not yet closed, in order: more than one when pipelined. */
type QueuedSocket = Socket & { [queueKey]?: RequestState[]; _httpMessage?: ServerResponse | null };

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
  const bodies = createBodyBudget(options.maxBufferedBodyBytes);
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
    if (state.closed) return;
    state.closed = true;
    const queue = (state.req.socket as QueuedSocket)[queueKey];
    const at = queue?.indexOf(state) ?? -1;
    if (at !== -1) queue?.splice(at, 1);
    inFlight.remove(state);
    if (state.admitted) admitted--;
    if (state.reservedBytes > 0) bodies.release(state.reservedBytes);
    if (!this.writableFinished) abortRequest(state, new ClientGoneError());
    // Refused requests (shed, rate-limited) have no access line: they are
    // counted in the shedder's summary, one line a second at most, so a
    // flood does not turn into a flood of log lines.
    if (isProbe(state.req.url ?? '') ? options.logHealthChecks : !state.refused) {
      logAccess(log, state, options.projectId);
    }
    // A response that started before the drain went out keep-alive; its
    // socket is idle now and must not outlive the server.
    if (closing) closeIdle([state.req.socket as QueuedSocket]);
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
      closed: false,
      closeMarked: false,
      socketStatus: undefined,
      reservedBytes: 0,
    });
    (res as StatefulResponse)[stateKey] = state;
    inFlight.add(state);
    res.on('close', onResponseClose);
    const socket = req.socket as QueuedSocket;
    const queue = socket[queueKey] ?? [];
    socket[queueKey] = queue;
    queue.push(state);
    if (closing && !markForClose(queue)) {
      // An earlier answer on this socket already went out with Connection:
      // close: Node ends the socket after it, so this request could never be
      // answered. It is not run, so it has no effect a client would retry.
      state.refused = true;
      return;
    }

    const url = req.url ?? '';
    if ((req.method === 'GET' || req.method === 'HEAD') && isProbe(url)) {
      if (url.startsWith(HEALTH_PATH)) return serveLiveness(state);
      return void serveReadiness(state).catch(internalError(state));
    }
    for (const [name, value] of securityHeaderEntries) res.setHeader(name, value);
    res.setHeader('x-request-id', state.requestId);
    if (refuseMalformed(state)) return;
    if (rateLimiter && !takeToken(state, rateLimiter)) return;
    if (shedder) {
      const reason = shedder.check(admitted);
      if (reason) return refuse(state, reason);
    }
    if (announcesBody(req)) return void readThenDispatch(state).catch(internalError(state));
    admit(state);
    dispatch(state);
  };

  // While closing, a response gets Connection: close only when it is the one
  // request of its socket. Node ends the socket after the response that has
  // it and drops the answers queued behind it, and on a pipelined socket the
  // answers behind are written, headers and all, as soon as their handlers
  // return: no later one can be marked instead. So a pipelined socket's
  // answers go out keep-alive and the socket is closed once idle (see
  // onResponseClose). Resolves false when an earlier answer of the socket
  // already went out with Connection: close.
  const markForClose = (queue: RequestState[]): boolean => {
    const only = queue.length === 1 ? queue[0] : undefined;
    for (const earlier of queue) {
      if (earlier === queue.at(-1)) break;
      if (earlier.closeMarked && earlier.res.headersSent) return false;
      if (earlier.closeMarked) {
        earlier.res.removeHeader('connection');
        earlier.closeMarked = false;
      }
    }
    if (only && !only.res.headersSent) {
      only.res.setHeader('connection', 'close');
      only.closeMarked = true;
    }
    return true;
  };

  // Closes a connection between requests: none of its requests is in flight
  // (its answers all written) and none has started arriving. The second is
  // what no public API tells; node:http's own list of its parsers does.
  let receiving: (() => ReadonlySet<Socket>) | undefined;
  const closeIdle = (sockets: Iterable<QueuedSocket>) => {
    receiving ??= receivingSockets(server);
    const busy = receiving();
    for (const socket of sockets) {
      if (!socket[queueKey]?.length && !busy.has(socket)) socket.destroySoon();
    }
  };

  // What node:http would answer itself, with no body, no security headers and
  // no access line, answered as problems instead (requireHostHeader is off
  // and checkExpectation handled for that). True when it answered.
  const refuseMalformed = (state: RequestState): boolean => {
    const { req } = state;
    // HTTP/1.0 may omit it, but the app's URL is built from it: refused the same.
    if (req.headers.host === undefined) {
      refuseUnread(state, 400, { code: 'bad_request', detail: 'the request must carry a Host header' });
      return true;
    }
    const expect = req.headers.expect;
    if (expect !== undefined && expect.toLowerCase() !== '100-continue') {
      refuseUnread(state, 417, { code: 'expectation_failed', detail: 'the only expectation served is 100-continue' });
      return true;
    }
    if (req.url === '*') {
      // The asterisk form asks about the server as a whole (RFC 9110 §9.3.7); only OPTIONS may use it.
      if (req.method === 'OPTIONS') {
        state.res.writeHead(204, { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });
        state.res.end();
      } else {
        refuseUnread(state, 400, { code: 'bad_request', detail: 'the request target * is for OPTIONS only' });
      }
      return true;
    }
    return false;
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
    // A body larger than the whole memory budget could never be held: too large.
    const limit = Math.min(limitFor(req), bodies.maxBytes);
    if (declaredTooLarge(req, limit)) return refuseTooLarge(req, res, limit);
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    if (declared !== undefined) {
      if (!bodies.reserve(declared)) return refuse(state, 'body_memory');
      state.reservedBytes = declared;
    }
    // A chunked body reserves as its chunks arrive.
    const reserveChunk = (bytes: number) => {
      if (!bodies.reserve(bytes)) return false;
      state.reservedBytes += bytes;
      return true;
    };
    const outcome = await readBody(req, limit, declared === undefined ? reserveChunk : undefined);
    if (!outcome.ok) {
      if (outcome.reason === 'too_large') refuseTooLarge(req, res, limit);
      if (outcome.reason === 'no_memory') refuse(state, 'body_memory');
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
      // Answered as a problem in refuseMalformed, not by Node with an empty 400.
      requireHostHeader: false,
    },
    onRequest,
  );

  // Any other Expect than 100-continue: Node would answer an empty 417 itself.
  server.on('checkExpectation', onRequest);

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
      // READ_TIMEOUT_MS on a request whose body was still arriving: the client is answered, not gone.
      if (status === 408) markTimedOut((socket as QueuedSocket)[queueKey]?.[0]);
      answerOnSocket(socket, status, clientErrorProblem(error.code));
    }
    socket.destroy();
  });

  const markTimedOut = (state: RequestState | undefined) => {
    if (!state || state.res.headersSent) return;
    state.socketStatus = 408;
    abortRequest(state, new RequestTimeoutError(options.readTimeoutMs));
  };

  server.on('connection', (socket: QueuedSocket) => {
    connections.add(socket);
    socket.once('close', () => {
      connections.remove(socket);
      // Node 20 and 22 never close a response queued behind another on a
      // pipelined socket that closed: without this its request would stay in
      // flight, holding a slot, for good (seen: 150 such clients left the cap
      // at one request at a time).
      const queue = socket[queueKey];
      if (queue) for (const state of [...queue]) onResponseClose.call(state.res as StatefulResponse);
    });
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
        // Not Node's listen `signal`: it calls server.close(), which does what stopAccepting must not.
        server.listen({ port: options.port, host: options.host }, () => {
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
      // Requests already read but not yet answered go out with Connection:
      // close, unless their socket is pipelined (markForClose says why).
      for (const socket of connections.items) {
        const queue = (socket as QueuedSocket)[queueKey];
        if (queue?.length) markForClose(queue);
      }
      // Stops accepting without http.Server#close(): that one first closes the
      // connections it deems idle, which includes any whose response was
      // ended but is still being written (measured: a 32 MiB answer to a slow
      // reader was cut at 4 MB, Node 20 and 24), and stops the sweep that
      // enforces READ_HEADER_TIMEOUT_MS and READ_TIMEOUT_MS. net.Server's own
      // close only stops listening; the sweep keeps running for the drain.
      if (server.listening) net.Server.prototype.close.call(server);
      closeIdle(connections.items as ReadonlySet<QueuedSocket>);
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

/**
 * The sockets on which node:http is parsing a request (from its first byte
 * to its last): its internal ConnectionsList, what server.closeIdleConnections()
 * and the header timeout use. test/runtime/node-server.test.ts fails if a
 * Node.js release drops it; without it every socket counts as not receiving.
 */
function receivingSockets(server: Server): () => ReadonlySet<Socket> {
  const key = Object.getOwnPropertySymbols(server).find((symbol) => symbol.description === 'http.server.connections');
  const list = key && (server as unknown as Record<symbol, { active?: () => { socket: Socket }[] }>)[key];
  if (!list?.active) return () => new Set();
  const active = list.active.bind(list);
  return () => new Set(active().map((parser) => parser.socket));
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
