import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Health } from './health.js';
import type { Drainable } from './lifecycle.js';
import type { Logger } from './logger.js';
import { abortRequest, attachRequestState, ClientGoneError, type RequestState } from './request-signal.js';

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
 */

export type Listener = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface NodeServerOptions {
  host?: string | undefined;
  port: number;
  readHeaderTimeoutMs: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  idleTimeoutMs: number;
  health: Health;
  log: Logger;
}

export interface NodeServer extends Drainable {
  readonly server: Server;
  listen(signal: AbortSignal): Promise<AddressInfo>;
  /** Serve everything that is not a health probe with `listener`. Until then such requests wait. */
  setListener(listener: Listener | Promise<Listener>): void;
  readonly inFlight: number;
}

const HEALTH_PATH = '/healthz';
const READY_PATH = '/readyz';
// After the drain deadline aborts the request signals, a handler that reacts
// at once (a cancelled query turned into a 503) gets this long to answer.
const ABORT_GRACE_MS = 100;

const stateKey = Symbol('runway.state');
const healthBody = Buffer.from('{"status":"ok"}');
const jsonHeaders = { 'content-type': 'application/json', 'cache-control': 'no-store' };
// Computed once: /healthz is probed often and must cost next to nothing.
const healthHeaders = { ...jsonHeaders, 'content-length': healthBody.length };

export function sweepIntervalMs(...timeoutsMs: number[]): number {
  return Math.min(1_000, Math.max(50, Math.floor(Math.min(...timeoutsMs) / 10)));
}

export function createNodeServer(options: NodeServerOptions): NodeServer {
  const { health, log } = options;
  const inFlight = new Set<RequestState>();
  let closing = false;
  let listener: Listener | undefined;
  let pending: Promise<Listener> | undefined;
  let idleWaiter: (() => void) | undefined;

  // One shared 'close' listener, not a closure per request: it is on the hot path.
  function onResponseClose(this: ServerResponse) {
    const state = (this as ServerResponse & { [stateKey]?: RequestState })[stateKey] as RequestState;
    inFlight.delete(state);
    if (!this.writableFinished) abortRequest(state, new ClientGoneError());
    if (closing) {
      // A response that started before the drain went out keep-alive; its
      // socket is idle now and must not outlive the server.
      server.closeIdleConnections();
      if (inFlight.size === 0) idleWaiter?.();
    }
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const state = attachRequestState(req, res, Date.now());
    (res as ServerResponse & { [stateKey]?: RequestState })[stateKey] = state;
    inFlight.add(state);
    res.on('close', onResponseClose);
    if (closing) res.setHeader('connection', 'close');

    const url = req.url ?? '';
    if (
      url === HEALTH_PATH ||
      url === READY_PATH ||
      url.startsWith(`${HEALTH_PATH}?`) ||
      url.startsWith(`${READY_PATH}?`)
    ) {
      if (req.method === 'GET' || req.method === 'HEAD') {
        if (url.startsWith(HEALTH_PATH)) return serveLiveness(req, res);
        return void serveReadiness(req, res);
      }
    }
    if (listener) return listener(req, res);
    if (!pending) return sendProblem(res, 503, 'Service Unavailable', 'the application is not loaded');
    pending.then(
      (ready) => ready(req, res),
      () => sendProblem(res, 503, 'Service Unavailable', 'the application failed to start'),
    );
  };

  const serveLiveness = (req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, healthHeaders);
    res.end(req.method === 'HEAD' ? undefined : healthBody);
  };

  const serveReadiness = async (req: IncomingMessage, res: ServerResponse) => {
    const result = await health.readiness();
    const body = Buffer.from(JSON.stringify({ status: result.ok ? 'ready' : 'unavailable', checks: result.checks }));
    res.writeHead(result.ok ? 200 : 503, { ...jsonHeaders, 'content-length': body.length });
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

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const status = clientErrorStatus(error.code);
    const pendingResponse = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (status && socket.writable && !pendingResponse?.headersSent) {
      log.debug('client error', { code: error.code, status });
      const body = problemBody(status, statusTitles[status] ?? 'Bad Request', clientErrorDetail(error.code));
      socket.end(
        `HTTP/1.1 ${status} ${statusTitles[status]}\r\nContent-Type: application/problem+json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  });

  // WriteTimeout: a sweep over the requests in flight, not a timer per request.
  const writeSweep = setInterval(() => {
    const expired = Date.now() - options.writeTimeoutMs;
    for (const state of inFlight) {
      if (state.startedAt <= expired) {
        log.warn('write timeout, closing connection', { writeTimeoutMs: options.writeTimeoutMs });
        abortRequest(state, new Error(`write timeout of ${options.writeTimeoutMs} ms`));
        state.res.destroy();
      }
    }
  }, sweepIntervalMs(options.writeTimeoutMs));
  writeSweep.unref();
  server.once('close', () => clearInterval(writeSweep));

  const waitForInFlight = (timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      if (inFlight.size === 0) return resolve(true);
      const timer = setTimeout(() => {
        idleWaiter = undefined;
        resolve(false);
      }, timeoutMs);
      idleWaiter = () => {
        clearTimeout(timer);
        idleWaiter = undefined;
        resolve(true);
      };
    });

  return {
    server,
    get inFlight() {
      return inFlight.size;
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
    stopAccepting() {
      closing = true;
      // Requests already read but not yet answered go out with Connection: close.
      for (const state of inFlight) {
        if (!state.res.headersSent) state.res.setHeader('connection', 'close');
      }
      if (server.listening) server.close();
      server.closeIdleConnections();
    },
    waitForInFlight,
    async forceClose(reason) {
      const left = inFlight.size;
      for (const state of inFlight) abortRequest(state, reason);
      await waitForInFlight(ABORT_GRACE_MS);
      server.closeAllConnections();
      return left;
    },
  };
}

const statusTitles: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function clientErrorStatus(code: string | undefined): number | undefined {
  if (code === 'ECONNRESET' || code === 'EPIPE') return undefined;
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

function clientErrorDetail(code: string | undefined): string {
  if (code === 'HPE_HEADER_OVERFLOW') return 'the request headers are larger than the server accepts';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'the request was not received in time';
  return 'the request is not valid HTTP/1.1';
}

export function problemBody(status: number, title: string, detail: string): string {
  return JSON.stringify({ type: 'about:blank', title, status, detail });
}

export function sendProblem(res: ServerResponse, status: number, title: string, detail: string) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = problemBody(status, title, detail);
  res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
