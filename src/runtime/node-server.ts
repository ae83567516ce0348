import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import {
  ClientGoneError,
  DrainStartedError,
  HandlerTimeoutError,
  MalformedRequestError,
  RequestTimeoutError,
  WriteTimeoutError,
} from './abort-reasons.js';
import { logAccess } from './access-log.js';
import { createAdmission, type Refusal } from './admission.js';
import { createBodyBudget } from './body-budget.js';
import { startDeadlines, sweepIntervalMs } from './deadlines.js';
import type { EdgeOptions } from './edge-options.js';
import { createInFlight } from './in-flight.js';
import type { Drainable } from './lifecycle.js';
import { errorFields } from './logger.js';
import { answerOnSocket, firstClientError, LINGER_MS, trackConnections } from './node-connections.js';
import { RuntimeResponse, rateLinesOf } from './node-response.js';
import { createNodeSockets } from './node-websocket.js';
import { liveBody, probeContentHeaders, probeOf, readyAnswer } from './probes.js';
import { problemBody, problemHeaders } from './problem.js';
import { announcesBody, declaredTooLarge, readBody } from './request-body.js';
import {
  abortRequest,
  attachRequestState,
  clientIpOfState,
  drainController,
  type RequestState,
} from './request-context.js';
import { acceptRequestId } from './request-id.js';
import { absoluteUrl, type LimitsFor, type RouteLimits } from './route-settings.js';
import { clientErrorProblem, type ProblemAnswer, runtimeProblems } from './runtime-problems.js';
import { asksForWebSocket } from './websocket.js';
import { createSocketHub, defaultSocketSettings } from './websocket-hub.js';
import { checkWriteProgress, forgetWriteWindow } from './write-progress.js';

/**
 * The node:http edge: it translates between node:http and the runtime's
 * transport-free policy (admission.ts, probes.ts, runtime-problems.ts,
 * deadlines.ts, body-budget.ts), and keeps what only node:http has: its
 * timeouts, the lingering close, `clientError`, and its connections
 * (node-connections.ts). The seed design's four Go timeouts map onto Node:
 *   ReadHeaderTimeout -> `headersTimeout` (slowloris: headers trickled in)
 *   ReadTimeout       -> `requestTimeout` (the whole request, body included)
 *   WriteTimeout      -> nothing in Node; the deadline sweep destroys the
 *                        connection of a client that stops taking its
 *                        response (write-progress.ts: by progress, so a
 *                        stream that flows is never cut), which frees what
 *                        was buffered for it
 *   IdleTimeout       -> `keepAliveTimeout`. It must exceed the load
 *                        balancer's idle timeout (ALB 60 s) so the LB closes
 *                        first and never reuses a socket we just closed.
 * Node checks header and request timeouts on a sweep that runs every
 * `connectionsCheckingInterval` (30 s by default, so a 5 s header timeout
 * could cut at 35 s); ours runs at a tenth of the shortest of them.
 * Headers over Node's 16 KiB `maxHeaderSize` are answered 431 by Node's parser.
 */

export type Listener = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface NodeServer extends Drainable {
  listen(signal: AbortSignal): Promise<AddressInfo>;
  /** Serve everything that is not a health probe with `listener`. Until then such requests wait. */
  setListener(listener: Listener | Promise<Listener>): void;
  /** The app's per-route settings (route-settings.ts); undefined: the server's for every route. */
  setRouteLimits(limitsFor: LimitsFor | undefined): void;
}

// At the drain deadline, how long the destroyed connections get to report closed.
const CLOSE_WAIT_MS = 200;
// An answer with no more than this waiting in the socket's buffer holds no in-flight slot.
const HELD_ANSWER_BYTES = 64 * 1024;
const NO_ROUTE_LIMITS: RouteLimits = Object.freeze({});
// Requests pipelined on one socket beyond which it is no longer read, until half of them are answered.
const MAX_QUEUED = 32;
const pausedKey = Symbol('runway.pausedReading');
type PausableSocket = Socket & { [pausedKey]?: boolean };

function pauseReading(socket: Socket) {
  (socket as PausableSocket)[pausedKey] = true;
  socket.pause();
}

// Only what this file paused: node:http pauses a socket too, for answers it buffers.
function resumeReading(socket: Socket) {
  if (!(socket as PausableSocket)[pausedKey]) return;
  (socket as PausableSocket)[pausedKey] = false;
  socket.resume();
}

const stateKey = Symbol('runway.state');
const liveBuffer = Buffer.from(liveBody);
// Computed once: /healthz is probed often and must cost next to nothing. The security headers and
// X-Request-Id come with every answer's head (node-response.ts).
const liveHeaders = { ...probeContentHeaders, 'content-length': liveBuffer.length };

type StatefulResponse = ServerResponse & { [stateKey]?: RequestState };

export function createNodeServer(options: EdgeOptions): NodeServer {
  const { health, log, trust } = options;
  const admission = createAdmission(options);
  const inFlight = createInFlight<RequestState>();
  const bodies = createBodyBudget(options.maxBufferedBodyBytes);
  // Open WebSockets (websocket-hub.ts); upgrade requests are served as requests until the handshake.
  const hub = createSocketHub(options.websocket ?? defaultSocketSettings, log);
  const sockets = createNodeSockets(hub, admission.refuse);
  // Requests whose handler runs: what MAX_INFLIGHT_REQUESTS caps (admission.ts).
  let running = 0;
  let closing = false;
  // One signal for every request: drainSignalOf(c) (request-context.ts).
  const drain = drainController();
  const release = (state: RequestState) => {
    if (!state.admitted) return;
    state.admitted = false;
    running--;
  };
  // A slot is held while a request costs the process: its handler runs, or its answer sits in our
  // memory (a buffered body to a slow reader: the cap is what bounds that memory). A streamed body,
  // held to a chunk or two by backpressure, gives its slot back once its first bytes went out: on
  // the turn after its handler answered (one setImmediate for all of a turn's answers, not one per
  // request), else on a later sweep (checkWrite). Most answers finish first and release in finish().
  const answered: (RequestState | undefined)[] = [];
  const releaseAnswered = () => {
    for (const state of answered) {
      if (!state) continue;
      state.answeredAt = -1;
      if (state.admitted) releaseIfSent(state);
    }
    answered.length = 0;
  };
  const releaseIfSent = (state: RequestState) => {
    const socket = state.res.socket;
    if (socket && socket.writableLength <= HELD_ANSWER_BYTES) release(state);
  };
  const onAnswered = (state: RequestState) => {
    state.answered = true;
    state.answeredAt = answered.push(state) - 1;
    if (state.answeredAt === 0) setImmediate(releaseAnswered);
  };
  let listener: Listener | undefined;
  let pending: Promise<Listener> | undefined;
  let limitsFor: LimitsFor | undefined;

  // A request ends when its response closes, or its socket does (node-connections.ts).
  const finish = (state: RequestState) => {
    if (state.closed) return;
    state.closed = true;
    // Most answers finish in the turn their handler answered: the list must not keep the request,
    // its response and what they hold alive until the turn ends (measured: V8 then copied about
    // 150 KB of them at every scavenge of a /json load, and grew the young generation for it).
    if (state.answeredAt >= 0) {
      answered[state.answeredAt] = undefined;
      state.answeredAt = -1;
    }
    connections.dequeue(state);
    const socket = state.req.socket;
    const queue = connections.queueOf(socket);
    const next = queue[0];
    if (next?.deferred && !socket.destroyed) {
      next.deferred = false;
      // Its deadlines count from now: the wait was the earlier answers', not its handler's.
      next.startedAt = Date.now();
      // Answered meanwhile (a 408 of clientError's): nothing left to run.
      if (!next.res.writableEnded) serveRequest(next);
    }
    // Not during the drain: a client that pipelined to the cap is told to stop (Connection: close on the last).
    if (queue.length < MAX_QUEUED / 2 && !closing) resumeReading(socket);
    inFlight.remove(state);
    release(state);
    if (state.reservedBytes > 0) bodies.release(state.reservedBytes);
    forgetWriteWindow(socket);
    if (!state.res.writableFinished && !state.upgraded) abortRequest(state, new ClientGoneError());
    // Refused requests (shed, rate-limited) have no access line: they are
    // counted in the shedder's summary, one line a second at most, so a
    // flood does not turn into a flood of log lines.
    if (probeOf(state.req.method, state.req.url ?? '') ? options.logHealthChecks : !state.refused) {
      logAccess(log, state, options.projectId);
    }
    // A response that started before the drain went out keep-alive; its
    // socket is idle now and must not outlive the server.
    if (closing && !state.upgraded) connections.closeIdle(socket);
  };

  // The handshake is written, or refused by ws: the response object has let go of the socket.
  const settleUpgrade = (state: RequestState, upgraded: boolean) => {
    state.upgraded = upgraded;
    // Its socket is the hub's now: the drain closes it with 1001, not as an idle connection.
    if (upgraded) connections.handOver(state.req.socket);
    finish(state);
  };

  // One shared 'close' listener, not a closure per request: it is on the hot path.
  function onResponseClose(this: StatefulResponse) {
    finish(this[stateKey] as RequestState);
  }

  // `head`: a request that asks for a WebSocket, with what arrived after its headers.
  const onRequest = (req: IncomingMessage, res: ServerResponse, head?: Buffer) => {
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
      reservedBytes: 0,
      drainSignal: drain.signal,
      answered: false,
      answeredAt: -1,
      onAnswered,
      limits: undefined,
      deferred: false,
      upgrade: undefined,
      upgraded: false,
    });
    if (head) state.upgrade = sockets.offer(state, req.socket, head, settleUpgrade);
    (res as StatefulResponse)[stateKey] = state;
    (res as RuntimeResponse).requestId = state.requestId;
    inFlight.add(state);
    res.on('close', onResponseClose);
    if (!connections.enqueue(state, closing)) {
      state.refused = true;
      return;
    }
    // Pipelined behind an answer not yet finished: it runs when it reaches the
    // head of its socket's queue (finish() starts it), as Go serves a
    // connection one request at a time. Run now, it would hold a slot and
    // buffer its answer behind, say, a stream that never ends (the hostile
    // review pinned 19 of 20 slots from one socket). Its answer could not go
    // out before the earlier ones anyway.
    const queue = connections.queueOf(req.socket);
    if (queue[0] !== state) {
      state.deferred = true;
      // Deferred requests buffer nothing Node would pause the socket for: past MAX_QUEUED, stop reading.
      if (queue.length >= MAX_QUEUED) pauseReading(req.socket);
      return;
    }
    serveRequest(state);
  };

  const serveRequest = (state: RequestState) => {
    const { req, res } = state;
    const probe = probeOf(req.method, req.url ?? '');
    if (probe === 'live') return serveLiveness(state);
    if (probe === 'ready') return void serveReadiness(state).catch(internalError(state));
    const malformed = malformedProblem(req);
    if (malformed) return refuseUnread(state, malformed);
    if (req.method === 'OPTIONS' && req.url === '*') {
      // The asterisk form asks about the server as a whole (RFC 9110 §9.3.7).
      res.writeHead(204, { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });
      return void res.end();
    }
    const verdict = admission.arrive(() => clientIpOfState(state), running);
    if (verdict.rateHeaders) (res as RuntimeResponse).rateLines = rateLinesOf(verdict.rateHeaders);
    if (verdict.refusal) return refuse(state, verdict.refusal);
    // An upgrade's body cannot be read: node:http let go of its parser (server.on('upgrade') below).
    if ((req as IncomingMessage & { upgrade?: boolean }).upgrade && announcesBody(req)) {
      return refuseUnread(state, runtimeProblems.badHandshake('an upgrade has no body'));
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
    running++;
  };

  const refuse = (state: RequestState, refusal: Refusal) => {
    state.refused = true;
    refuseUnread(state, refusal);
  };

  // An answer before the body is read. A request that announced one gets
  // `Connection: close` and a lingering close, since the body still on the
  // wire would otherwise be read to reuse the socket; unless a request is
  // already queued behind it on the socket: the parser got past its body
  // then, and closing would drop the later answers.
  const refuseUnread = (state: RequestState, answer: ProblemAnswer) => {
    if (announcesBody(state.req) && connections.queueOf(state.req.socket).at(-1) === state) closeAfterAnswer(state);
    respondProblem(state.res, answer);
  };

  // A bug in the runtime's own async paths (or in the app's bodyLimitFor)
  // answers this one request with a 500, instead of becoming an unhandled
  // rejection.
  const internalError = (state: RequestState) => (error: unknown) => {
    log.error('runtime error', { requestId: state.requestId, ...errorFields(error) });
    respondProblem(state.res, runtimeProblems.internal());
  };

  const dispatch = (state: RequestState) => {
    if (listener) {
      routeOf(state);
      return listener(state.req, state.res);
    }
    void loadedApp(state).then((ready) => {
      if (!ready) return;
      routeOf(state);
      ready(state.req, state.res);
    });
  };

  // While the app loads (a fast import, or a start-up waiting for a database
  // that is down) a request waits for it, up to the handler deadline: then it
  // is answered 503 `not_started` (the sweep calls onDeadline), never held
  // until the write timeout destroys its socket.
  const loadedApp = (state: RequestState): Promise<Listener | undefined> => {
    if (listener) return Promise.resolve(listener);
    if (!pending) {
      refuseUnread(state, runtimeProblems.notStarted());
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      state.onDeadline = () => {
        refuseUnread(state, runtimeProblems.starting());
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
            refuseUnread(state, runtimeProblems.notStarted());
          }
          resolve(undefined);
        },
      );
    });
  };

  // A route's own settings are known once the app is: looked up once, when its body is read or
  // the request is dispatched, whichever comes first (NO_ROUTE_LIMITS: looked up, none).
  const routeOf = (state: RequestState) => {
    if (state.limits !== undefined || !limitsFor) return;
    state.limits = limitsFor(state.req.method ?? 'GET', absoluteUrl(state.req.url ?? '/')) ?? NO_ROUTE_LIMITS;
  };

  const readThenDispatch = async (state: RequestState) => {
    const { req, res } = state;
    // Route limits come with the app: a body that arrives while it loads waits for them.
    // Once it is loaded the check below runs in the same turn as the headers: an await
    // here first let oversized uploads push more of their bodies in before the 413
    // paused them (measured: 35 MB of RSS instead of 11 under 20 x 1 GiB uploads).
    if (!listener && !(await loadedApp(state))) return;
    // The client may have left while the app loaded: nothing to reserve for.
    if (state.closed) return;
    routeOf(state);
    // A body larger than the whole memory budget could never be held: too large.
    const limit = Math.min(state.limits?.bodyLimitBytes ?? options.bodyLimitBytes, bodies.maxBytes);
    if (declaredTooLarge(req, limit)) return refuseUnread(state, runtimeProblems.bodyTooLarge(limit));
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    if (declared !== undefined) {
      if (!bodies.reserve(declared)) return refuse(state, admission.refuse('body_memory'));
      state.reservedBytes = declared;
    }
    // A chunked body reserves as its chunks arrive.
    const reserveChunk = (bytes: number) => {
      if (!bodies.reserve(bytes)) return false;
      state.reservedBytes += bytes;
      return true;
    };
    // `Expect: 100-continue`: the body is invited only now, once nothing refuses it.
    if (req.headers.expect !== undefined) res.writeContinue();
    const outcome = await readBody(req, limit, declared === undefined ? reserveChunk : undefined);
    if (!outcome.ok) {
      if (outcome.reason === 'too_large') refuseUnread(state, runtimeProblems.bodyTooLarge(limit));
      if (outcome.reason === 'no_memory') refuse(state, admission.refuse('body_memory'));
      return;
    }
    // The body is in: the cap and the loop delay again; a refusal now leaves the connection reusable.
    const refusal = admission.again(running);
    if (refusal) {
      state.refused = true;
      return respondProblem(res, refusal);
    }
    (req as IncomingMessage & { rawBody?: Buffer }).rawBody = outcome.body;
    admit(state);
    dispatch(state);
  };

  const closeAfterAnswer = (state: RequestState) => {
    const { req, res } = state;
    // Nothing behind it on this socket may run: Node drops the answers after this one.
    connections.endWith(state);
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

  const respondProblem = (res: ServerResponse, { status, init }: ProblemAnswer) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const state = (res as StatefulResponse)[stateKey];
    const body = JSON.stringify(problemBody(status, init, state?.requestId));
    res.writeHead(status, { ...problemHeaders(init), 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  // Probes pass their headers to one writeHead call: no setHeader, on the most frequent request.
  const serveLiveness = ({ req, res }: RequestState) => {
    res.writeHead(200, liveHeaders);
    res.end(req.method === 'HEAD' ? undefined : liveBuffer);
  };

  const serveReadiness = async ({ req, res }: RequestState) => {
    const { status, body } = readyAnswer(await health.readiness());
    const bytes = Buffer.from(body);
    res.writeHead(status, { ...probeContentHeaders, 'content-length': bytes.length });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  };

  const server = createServer(
    {
      headersTimeout: options.readHeaderTimeoutMs,
      requestTimeout: options.readTimeoutMs,
      keepAliveTimeout: options.idleTimeoutMs,
      connectionsCheckingInterval: sweepIntervalMs(options.readHeaderTimeoutMs, options.readTimeoutMs),
      // Answered as a problem (malformedProblem), not by Node with an empty 400.
      requireHostHeader: false,
      // Every answer carries the runtime's headers in its head (node-response.ts).
      ServerResponse: RuntimeResponse,
    },
    onRequest,
  );
  const connections = trackConnections(server, finish);

  // A request with `Upgrade`: node:http has let go of the socket (and its parser). It is served as
  // any request, through a response of its own on that socket, which ends the connection after
  // its answer; a WebSocket route takes the socket over instead (node-websocket.ts). Any other
  // protocol (h2c) is not switched to: the request is answered over HTTP/1.1.
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    // node:http took its error listener off the socket with its parser: a reset while the app
    // checks the upgrade would be an 'error' event with no listener, which ends the process.
    // The socket's 'close' ends the request (its response's close).
    socket.on('error', ignoreSocketError);
    // Pipelined behind requests still being answered: served once they are, in its turn, as Go
    // serves a connection (closing after the first answer dropped the ones queued behind it).
    const last = connections.queueOf(socket).at(-1);
    if (last) return void last.res.once('close', () => serveUpgrade(req, socket, head));
    serveUpgrade(req, socket, head);
  });

  const serveUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (socket.destroyed) return;
    try {
      const res = new RuntimeResponse(req);
      res.shouldKeepAlive = false;
      res.assignSocket(socket);
      res.once('finish', () => socket.destroySoon());
      onRequest(req, res, asksForWebSocket(req.headers.upgrade) ? head : undefined);
    } catch (error) {
      // An event listener that throws would take the process down.
      log.error('runtime error', errorFields(error));
      socket.destroy();
    }
  };

  // Any other Expect than 100-continue: Node would answer an empty 417 itself.
  server.on('checkExpectation', onRequest);

  // `Expect: 100-continue`: the client is invited to send its body only once
  // nothing refuses it (readThenDispatch), so a refused body is never sent.
  server.on('checkContinue', onRequest);

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const answer = clientErrorProblem(error.code);
    if (!answer) return void socket.destroy();
    if (!firstClientError(socket)) return;
    const queue = connections.queueOf(socket);
    const last = queue.at(-1);
    if (last && !last.req.complete) {
      // The error is about the request still being received: READ_TIMEOUT_MS, or a body that breaks
      // HTTP/1.1 (a garbled chunk, trailers too large). It is answered through its own response, in
      // its turn on the socket (node:http sends the answers owed before it first), and the socket
      // ends after it (Connection: close). One whose answer has begun cannot be told: the socket goes.
      log.debug('client error', { code: error.code, status: answer.status, requestId: last.requestId });
      if (last.res.headersSent) return void socket.destroy();
      abortRequest(
        last,
        answer.status === 408 ? new RequestTimeoutError(options.readTimeoutMs) : new MalformedRequestError(error.code),
      );
      return refuseUnread(last, answer);
    }
    // About a request not yet read, while an earlier one of the socket is
    // still owed its answer: one written to the socket now would be read as
    // that one's. The socket closes after the answers it owes instead.
    if (queue.length > 0) {
      log.debug('client error', { code: error.code, status: answer.status });
      return connections.closeAfterQueue(socket);
    }
    // Answered on the socket: the request could not be read, so its id is a fresh one, on the answer
    // and on the line that records it.
    const requestId = randomUUID();
    log.debug('client error', { code: error.code, status: answer.status, requestId });
    answerOnSocket(socket, answer, requestId);
  });

  const writeProgress = { writeTimeoutMs: options.writeTimeoutMs, minBytesPerSecond: options.writeMinRateBps };
  const deadlines = startDeadlines<RequestState>({
    items: inFlight.items,
    handlerTimeoutMs: options.handlerTimeoutMs,
    onHandlerDeadline: (state) =>
      abortRequest(state, new HandlerTimeoutError(state.limits?.handlerTimeoutMs ?? options.handlerTimeoutMs)),
    writeTimeoutMs: options.writeTimeoutMs,
    checkWrite(state, now) {
      const socket = state.res.socket as (Socket & { _httpMessage?: ServerResponse | null }) | null;
      // Pipelined: only the response that owns the socket is being written.
      if (!socket || socket._httpMessage !== state.res || state.abortReason instanceof WriteTimeoutError) return;
      if (state.admitted && state.answered) releaseIfSent(state);
      const limits = state.limits;
      const progress =
        limits?.writeTimeoutMs === undefined && limits?.writeMinRateBps === undefined
          ? writeProgress
          : {
              writeTimeoutMs: limits.writeTimeoutMs ?? options.writeTimeoutMs,
              minBytesPerSecond: limits.writeMinRateBps ?? options.writeMinRateBps,
            };
      const verdict = checkWriteProgress(socket, now, progress);
      if (!verdict) return;
      log.warn('write timeout, closing connection', {
        requestId: state.requestId,
        verdict,
        writeTimeoutMs: progress.writeTimeoutMs,
        writeMinRateBps: progress.minBytesPerSecond,
      });
      abortRequest(state, new WriteTimeoutError(progress.writeTimeoutMs));
      state.res.destroy();
    },
  });
  server.once('close', deadlines.stop);

  return {
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
    setRouteLimits(next) {
      limitsFor = next;
    },
    stopAccepting() {
      closing = true;
      drain.abort(new DrainStartedError());
      // After the drain signal: an app that listens to it sends its last message before the 1001.
      hub.drain();
      // Stops accepting without http.Server#close(): that one first closes the
      // connections it deems idle, which includes any whose response was
      // ended but is still being written (measured: a 32 MiB answer to a slow
      // reader was cut at 4 MB, Node 20 and 24), and stops the sweep that
      // enforces READ_HEADER_TIMEOUT_MS and READ_TIMEOUT_MS. net.Server's own
      // close only stops listening; that sweep keeps running for the drain.
      if (server.listening) net.Server.prototype.close.call(server);
      // Requests not yet answered go out with Connection: close where it is safe; idle sockets go.
      connections.drain();
      // A client that pipelines is read no further: what it has queued is answered (Connection: close
      // on the last), in its turn; reading on would let it queue more than the drain can answer.
      for (const socket of connections.sockets) {
        const queue = connections.queueOf(socket);
        if (queue.length > 1 && queue.every((state) => state.req.complete)) pauseReading(socket);
      }
    },
    async waitForInFlight(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      if (!(await inFlight.wait(timeoutMs))) return false;
      // A request whose headers arrive now still gets its answer (Connection:
      // close) and its socket closes after it; the process must not exit first.
      if (!(await connections.wait(Math.max(0, deadline - Date.now())))) return false;
      // WebSockets: their closing handshakes, or the hub's drop after CLOSE_WAIT_MS.
      return hub.wait(Math.max(0, deadline - Date.now()));
    },
    async forceClose(reason) {
      // Those whose answer had begun are streams (or answers still being written) the app did not end.
      let streams = 0;
      for (const state of inFlight.items) if (state.res.headersSent) streams++;
      const requests = await inFlight.abortAll((state) => abortRequest(state, reason));
      // Told 1001 at the drain's start: one still open did not answer it; it goes uncounted.
      hub.terminateAll();
      server.closeAllConnections();
      // Their sockets close on a later turn; the access lines are written then, before the exit.
      await inFlight.wait(CLOSE_WAIT_MS);
      return { requests, streams };
    },
  };
}

function ignoreSocketError() {}

// What node:http would answer itself, with no body, no security headers and
// no access line, answered as problems instead (requireHostHeader is off and
// checkExpectation is handled for that).
function malformedProblem(req: IncomingMessage): ProblemAnswer | undefined {
  // HTTP/1.0 may omit it, but the app's URL is built from it: refused the same.
  const host = req.headers.host;
  if (host === undefined || !VALID_HOST.test(host) || hostLines(req) > 1) return runtimeProblems.missingHost();
  const expect = req.headers.expect;
  if (expect !== undefined && expect.toLowerCase() !== '100-continue') return runtimeProblems.expectationFailed();
  if (req.url === '*' && req.method !== 'OPTIONS') return runtimeProblems.asteriskTarget();
  return undefined;
}

// A host name, an IPv4 address or a bracketed IPv6 address, and a port
// (RFC 9110 §7.2 uri-host [ ":" port ]); anything else cannot build the URL.
const VALID_HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

// Node keeps the first of several Host lines; RFC 9112 §3.2 says such a request is a 400.
function hostLines(req: IncomingMessage): number {
  let lines = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2)
    if ((raw[i] as string).length === 4 && /^host$/i.test(raw[i] as string)) lines++;
  return lines;
}
