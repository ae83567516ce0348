import type { EdgeOptions } from './edge-options.js';
import type { ServerAdapter } from './server-adapter.js';
import { createWebHandler } from './web-server.js';

/**
 * The Bun adapter: `Bun.serve` with the web edge (web-server.ts).
 * `idleTimeout` is Bun's only connection timeout (seconds, at most 255): it
 * stands for IDLE_TIMEOUT_MS and, as inactivity, for a client that stops
 * sending mid-request. `maxRequestBodySize` is set above the largest limit
 * the app may ask for, as a backstop; the limits themselves are enforced by
 * the web edge. `stop()` closes the listener and lets requests in flight
 * finish; `stop(true)` closes every connection at the drain deadline.
 */

interface BunServer {
  port: number;
  hostname: string;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
  requestIP(request: Request): { address: string } | null;
}
interface BunGlobal {
  serve(options: {
    port: number;
    hostname?: string;
    idleTimeout: number;
    maxRequestBodySize: number;
    fetch(request: Request, server: BunServer): Promise<Response> | Response;
    error?(error: Error): Response;
  }): BunServer;
}

const BUN_MAX_IDLE_S = 255;

export function createBunServer(options: EdgeOptions): ServerAdapter {
  const Bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;
  const handler = createWebHandler(options);
  let server: BunServer | undefined;
  handler.onStopAccepting(() => void server?.stop(false));
  handler.onForceClose(() => void server?.stop(true));
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
      });
      server = bun;
      return { address: bun.hostname, port: bun.port };
    },
    serve(app) {
      handler.setApp(app);
    },
    stopAccepting: handler.stopAccepting,
    waitForInFlight: handler.waitForInFlight,
    forceClose: handler.forceClose,
  };
}
