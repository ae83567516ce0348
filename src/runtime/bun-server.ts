import type { EdgeOptions } from './edge-options.js';
import { settlesWithin } from './in-flight.js';
import type { ServerAdapter } from './server-adapter.js';
import { createWebHandler } from './web-server.js';
import { type SocketLink, type SocketSession, sendLimitOf } from './websocket-hub.js';

/**
 * The Bun adapter: `Bun.serve` with the web edge (web-server.ts).
 * `idleTimeout` is Bun's only connection timeout (seconds, at most 255): it
 * stands for IDLE_TIMEOUT_MS and, as inactivity, for a client that stops
 * sending mid-request. `maxRequestBodySize` is set above the largest limit
 * the app may ask for, as a backstop; the limits themselves are enforced by
 * the web edge. `stop()` closes the listener and lets requests in flight
 * finish; `stop(true)` closes every connection at the drain deadline.
 * WebSockets: `server.upgrade()` with Bun's `websocket` handlers, which feed
 * the hub (websocket-hub.ts); `maxPayloadLength` is WEBSOCKET_MAX_MESSAGE_BYTES
 * (Bun closes 1009 beyond it), Bun's own idle timeout and pings are off:
 * the hub pings, as on node.
 */

interface BunSocket {
  data: SocketData;
  readyState: number;
  send(data: string | ArrayBuffer | Uint8Array): number;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(): number;
  getBufferedAmount(): number;
}
interface SocketData {
  /** Set at upgrade: the hub's session once the socket opens. */
  open(socket: BunSocket): SocketSession;
  session?: SocketSession;
}
interface BunServer {
  port: number;
  hostname: string;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
  requestIP(request: Request): { address: string } | null;
  upgrade(request: Request, options: { data: SocketData; headers: Headers }): boolean;
}
interface BunGlobal {
  serve(options: {
    port: number;
    hostname?: string;
    idleTimeout: number;
    maxRequestBodySize: number;
    fetch(request: Request, server: BunServer): Promise<Response | undefined> | Response | undefined;
    error?(error: Error): Response;
    websocket: {
      maxPayloadLength: number;
      idleTimeout: number;
      sendPings: boolean;
      perMessageDeflate: boolean;
      backpressureLimit: number;
      closeOnBackpressureLimit: boolean;
      open(socket: BunSocket): void;
      message(socket: BunSocket, message: string | Uint8Array): void;
      pong(socket: BunSocket): void;
      close(socket: BunSocket, code: number, reason: string): void;
    };
  }): BunServer;
}

const BUN_MAX_IDLE_S = 255;

export function createBunServer(options: EdgeOptions): ServerAdapter {
  const Bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;
  const handler = createWebHandler(options);
  let server: BunServer | undefined;
  // Resolves once Bun has sent every response, a streamed body the edge does not track included (one of
  // Hono's `stream()`, which says nothing of its length): the drain waits for it too, as on node:http.
  let stopped: Promise<void> | undefined;
  handler.onStopAccepting(() => {
    stopped = Promise.resolve(server?.stop(false)).catch(() => {});
  });
  handler.onForceClose(() => void server?.stop(true));
  handler.onUpgrade((request, events, { requestId, protocol, headers }) => {
    if (protocol) headers.set('sec-websocket-protocol', protocol);
    const data: SocketData = {
      open: (socket) =>
        handler.hub.session(link(socket, protocol ?? ''), events, { url: new URL(request.url), requestId }),
    };
    return server?.upgrade(request, { data, headers }) ? undefined : false;
  });
  return {
    runtime: 'bun',
    async listen(signal) {
      if (signal.aborted) throw new Error('shutdown started before listen');
      const bun = Bun.serve({
        port: options.port,
        hostname: options.host,
        idleTimeout: Math.min(BUN_MAX_IDLE_S, Math.ceil(options.idleTimeoutMs / 1000)),
        // A backstop only: the web edge enforces BODY_LIMIT_BYTES and the per-route limits.
        maxRequestBodySize: Math.max(options.bodyLimitBytes, 2 ** 32),
        fetch: (request, srv) => handler.handle(request, srv.requestIP(request)?.address ?? ''),
        websocket: {
          maxPayloadLength: handler.hub.settings.maxMessageBytes,
          idleTimeout: 0,
          sendPings: false,
          perMessageDeflate: false,
          // What Bun buffers for a client that does not read, its own pongs included (a ping flood
          // held 16 MiB per socket at Bun's default): the hub's bound, and the socket goes past it.
          backpressureLimit: sendLimitOf(handler.hub.settings),
          closeOnBackpressureLimit: true,
          open(socket) {
            socket.data.session = socket.data.open(socket);
            socket.data.session.opened();
          },
          message(socket, message) {
            const data =
              typeof message === 'string'
                ? message
                : (message.buffer.slice(message.byteOffset, message.byteOffset + message.byteLength) as ArrayBuffer);
            // Bun refused any message over maxPayloadLength; a string's length is at most its bytes.
            socket.data.session?.message(data, typeof message === 'string' ? message.length : message.byteLength);
          },
          pong(socket) {
            socket.data.session?.alive();
          },
          close(socket, code, reason) {
            socket.data.session?.closed(code, reason);
          },
        },
      });
      server = bun;
      return { address: bun.hostname, port: bun.port };
    },
    serve(app) {
      handler.setApp(app);
    },
    stopAccepting: handler.stopAccepting,
    async waitForInFlight(timeoutMs) {
      const startedAt = Date.now();
      if (!(await handler.waitForInFlight(timeoutMs))) return false;
      return settlesWithin(stopped, timeoutMs - (Date.now() - startedAt));
    },
    forceClose: handler.forceClose,
  };
}

function link(socket: BunSocket, protocol: string): SocketLink {
  return {
    send: (data) => void socket.send(data),
    close: (code, reason) => socket.close(code, reason),
    terminate: () => socket.terminate(),
    abrupt: true,
    ping: () => void socket.ping(),
    bufferedAmount: () => socket.getBufferedAmount(),
    get readyState() {
      return socket.readyState as 0 | 1 | 2 | 3;
    },
    protocol,
    raw: socket,
  };
}
