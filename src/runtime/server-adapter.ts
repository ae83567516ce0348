import type { CompiledApp, EdgeOptions } from './edge-options.js';
import type { Drainable } from './lifecycle.js';
import { createNodeServer } from './node-server.js';

/**
 * One contract, three runtimes. The bundle finds the runtime it runs on and
 * takes its native server: node:http on Node, `Bun.serve` on Bun,
 * `Deno.serve` on Deno. All three are driven by the same lifecycle signal,
 * health checks, logs and cleanup hooks (main.ts cannot tell them apart).
 */

export type Runtime = 'node' | 'bun' | 'deno';

export interface ServerAdapter extends Drainable {
  readonly runtime: Runtime;
  listen(signal: AbortSignal): Promise<{ address: string; port: number }>;
  /** Serve everything that is not a health probe with the app. Until it loads, such requests wait. */
  serve(app: Promise<CompiledApp>): void;
}

function detectRuntime(): Runtime {
  if ('Bun' in globalThis) return 'bun';
  if ('Deno' in globalThis) return 'deno';
  return 'node';
}

export async function createServerAdapter(options: EdgeOptions): Promise<ServerAdapter> {
  const runtime = detectRuntime();
  if (runtime === 'bun') return (await import('./bun-server.js')).createBunServer(options);
  if (runtime === 'deno') return (await import('./deno-server.js')).createDenoServer(options);
  return nodeAdapter(options);
}

function nodeAdapter(options: EdgeOptions): ServerAdapter {
  const server = createNodeServer(options);
  return {
    runtime: 'node',
    listen: server.listen,
    serve(app) {
      server.setListener(
        app.then(async (loaded) => {
          // Loaded after listen: see hono-listener.ts for the measured reason.
          const { createAppListener } = await import('./hono-listener.js');
          server.setRouteLimits(loaded.limitsFor);
          return createAppListener(loaded, options.handlerTimeoutMs);
        }),
      );
    },
    stopAccepting: server.stopAccepting,
    waitForInFlight: server.waitForInFlight,
    forceClose: server.forceClose,
  };
}
