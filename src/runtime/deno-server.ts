import type { EdgeOptions } from './edge-options.js';
import { settlesWithin } from './in-flight.js';
import type { ServerAdapter } from './server-adapter.js';
import { createWebHandler } from './web-server.js';
import type { SocketLink } from './websocket-hub.js';

/**
 * The Deno adapter: `Deno.serve` with the web edge (web-server.ts).
 * `shutdown()` is the stop-accepting step of the drain (requests in flight
 * finish), its promise and `finished` resolve once every response is out;
 * the server's `signal` closes every connection at the drain deadline.
 * `onListen` reports the bound address. Deno.serve exposes no
 * connection timeouts at all (docs/runtimes.md's table says what that means).
 * WebSockets: `Deno.upgradeWebSocket`, whose socket feeds the hub
 * (websocket-hub.ts). Deno's WebSocket has no ping() and no pong event: its
 * own `idleTimeout` pings (every half of WEBSOCKET_IDLE_TIMEOUT_MS) and closes
 * a socket that does not answer, in place of the hub's sweep. It has no
 * message limit either: a message arrives whole, then the hub closes 1009
 * if it is over WEBSOCKET_MAX_MESSAGE_BYTES. And no way to drop a socket
 * without a close frame: `terminate` sends one.
 */

interface DenoServer {
  finished: Promise<void>;
  shutdown(): Promise<void>;
}
interface DenoGlobal {
  serve(
    options: {
      port: number;
      hostname?: string;
      signal: AbortSignal;
      onListen(address: { hostname: string; port: number }): void;
    },
    handler: (request: Request, info: { remoteAddr: { hostname: string } }) => Promise<Response> | Response,
  ): DenoServer;
  upgradeWebSocket(
    request: Request,
    options: { protocol?: string; idleTimeout: number },
  ): { socket: WebSocket; response: Response };
}

export function createDenoServer(options: EdgeOptions): ServerAdapter {
  const Deno = (globalThis as unknown as { Deno: DenoGlobal }).Deno;
  const handler = createWebHandler(options);
  const stop = new AbortController();
  let server: DenoServer | undefined;
  // shutdown() is the graceful step: no new connections, requests in flight
  // finish. The `signal` closes the server and every connection at once, so
  // it is the drain deadline's step, not the first one.
  let shutdown: Promise<void> | undefined;
  handler.onStopAccepting(() => {
    shutdown = server?.shutdown().catch(() => {});
  });
  // The drain deadline closes every connection through the server's signal, unless the runtime had
  // nothing in flight by then: what Deno still holds is a connection whose answer went out (an upload
  // whose body shutdown() ended, answered 499), and aborting it throws BadResource from inside Deno
  // (the hostile review: `fatal error`). The exit ends it.
  let nothingInFlight = false;
  handler.onForceClose(() => {
    if (!nothingInFlight) stop.abort();
  });
  const { maxMessageBytes, idleTimeoutMs } = handler.hub.settings;
  handler.onUpgrade((request, events, { requestId, protocol, headers }) => {
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request, {
        ...(protocol ? { protocol } : {}),
        idleTimeout: Math.max(1, Math.ceil(idleTimeoutMs / 2_000)),
      });
    } catch {
      return false;
    }
    const { socket, response } = upgraded;
    for (const [name, value] of headers) response.headers.set(name, value);
    socket.binaryType = 'arraybuffer';
    const session = handler.hub.session(link(socket), events, { url: new URL(request.url), requestId });
    socket.onopen = () => session.opened();
    socket.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
      const data = event.data;
      session.message(data, typeof data === 'string' ? textBytes(data, maxMessageBytes) : data.byteLength);
    };
    socket.onclose = (event) => session.closed(event.code, event.reason);
    socket.onerror = (event) => session.failed((event as ErrorEvent).error ?? event);
    return response;
  });
  return {
    runtime: 'deno',
    listen(signal) {
      if (signal.aborted) return Promise.reject(new Error('shutdown started before listen'));
      return new Promise((resolve) => {
        server = Deno.serve(
          {
            port: options.port,
            hostname: options.host ?? '0.0.0.0',
            signal: stop.signal,
            onListen: ({ hostname, port }) => resolve({ address: hostname, port }),
          },
          // Deno's upgrade always has a Response (its 101): handle() returns undefined only on Bun.
          (request, info) => handler.handle(request, info.remoteAddr.hostname) as Promise<Response>,
        );
      });
    },
    serve(app) {
      handler.setApp(app);
    },
    stopAccepting: handler.stopAccepting,
    async waitForInFlight(timeoutMs) {
      const startedAt = Date.now();
      if (!(await handler.waitForInFlight(timeoutMs))) return false;
      nothingInFlight = true;
      // A client that left before its 101 leaves Deno holding a connection that never reports
      // anything: shutdown() would wait for it for ever, and the deadline's abort of the server
      // then throws BadResource from inside Deno (the hostile review: exit 1). The runtime's own
      // accounting is clean at this point; the exit ends what Deno still holds.
      if (handler.hub.abandoned > 0) return true;
      // A handler that has returned has not necessarily been written out:
      // `finished` resolves once Deno has sent every response, which must
      // happen before the process exits.
      return settlesWithin(shutdown ?? server?.finished, timeoutMs - (Date.now() - startedAt));
    },
    forceClose: handler.forceClose,
  };
}

function link(socket: WebSocket): SocketLink {
  return {
    send: (data) => socket.send(data as string | ArrayBuffer),
    close: (code, reason) => socket.close(code, reason),
    // No abrupt close in Deno's WebSocket: a close frame, queued behind what the client has not
    // read. The hub counts the socket until Deno reports it closed (or the drain's close wait ends).
    terminate: () => socket.close(1001, 'going away'),
    abrupt: false,
    ping: undefined,
    bufferedAmount: () => socket.bufferedAmount,
    get readyState() {
      return socket.readyState as 0 | 1 | 2 | 3;
    },
    get protocol() {
      return socket.protocol;
    },
    raw: socket,
  };
}

const encoder = new TextEncoder();
// A string of n UTF-16 units is at most 3n bytes: encoded only when that could pass the limit.
const textBytes = (text: string, limit: number) =>
  text.length * 3 <= limit ? text.length : encoder.encode(text).byteLength;
