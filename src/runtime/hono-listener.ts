import { getRequestListener } from '@hono/node-server';
import type { Listener } from './node-server.js';

/**
 * Bridges node:http to the app's `fetch`. Imported lazily after `listen`:
 * @hono/node-server touches the global `Request` when it loads, which costs
 * about 20 ms of cold start (shared/PERF-NOTES.md), and /healthz does not
 * need it.
 */
export interface FetchApp {
  fetch(request: Request, env: unknown): Response | Promise<Response>;
}

export function createAppListener(app: FetchApp): Listener {
  return getRequestListener((request, env) => app.fetch(request, env));
}
