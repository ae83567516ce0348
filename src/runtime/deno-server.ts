import type { EdgeOptions } from './edge-options.js';
import type { ServerAdapter } from './server-adapter.js';
import { createWebHandler } from './web-server.js';

/**
 * The Deno adapter: `Deno.serve` with the web edge (web-server.ts).
 * `shutdown()` is the stop-accepting step of the drain (requests in flight
 * finish), its promise and `finished` resolve once every response is out;
 * the server's `signal` closes every connection at the drain deadline.
 * `onListen` reports the bound address. Deno.serve exposes no
 * connection timeouts at all (README's runtime table says what that means).
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
  handler.onForceClose(() => stop.abort());
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
          (request, info) => handler.handle(request, info.remoteAddr.hostname),
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
      // A handler that has returned has not necessarily been written out:
      // `finished` resolves once Deno has sent every response, which must
      // happen before the process exits.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const left = Math.max(0, timeoutMs - (Date.now() - startedAt));
      const sent = await Promise.race([
        (shutdown ?? server?.finished)?.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), left);
        }),
      ]);
      clearTimeout(timer);
      return sent ?? true;
    },
    forceClose: handler.forceClose,
  };
}
