import type { Trust } from './client-ip.js';
import type { Health } from './health.js';
import type { LoadShedder } from './load-shedder.js';
import type { Logger } from './logger.js';
import type { RateLimiter } from './rate-limit.js';
import { compileRouteSettings, type LimitsFor, type RouteSetting } from './route-settings.js';
import type { SocketSettings } from './websocket-hub.js';

/**
 * What every edge (node-server.ts, web-server.ts with bun-server.ts and
 * deno-server.ts) is given: its own settings, no secret among them (the
 * config's `server` group conforms to ServerSettings), and the runtime's
 * shared pieces. And what it serves: the app, a `fetch` with optional
 * per-route body limits.
 */

export interface ServerSettings {
  port: number;
  host: string | undefined;
  readHeaderTimeoutMs: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  /** WRITE_MIN_RATE_BPS: with writeTimeoutMs, when a client that takes too little is cut (write-progress.ts). */
  writeMinRateBps: number;
  idleTimeoutMs: number;
  handlerTimeoutMs: number;
  bodyLimitBytes: number;
  /** MAX_BUFFERED_BODY_BYTES: all bodies held in memory together (body-budget.ts); 0 = no bound. */
  maxBufferedBodyBytes: number;
  trust: Trust;
  logHealthChecks: boolean;
  projectId: string | undefined;
  /** WEBSOCKET_*: the hub's bounds (websocket-hub.ts); undefined: its defaults. */
  websocket?: SocketSettings | undefined;
}

export interface EdgeOptions extends ServerSettings {
  health: Health;
  log: Logger;
  /** Refuses new requests past the in-flight cap or while the event loop is overloaded. */
  shedder?: LoadShedder | undefined;
  /** Per-client token buckets (RATE_LIMIT_RPS). */
  rateLimiter?: RateLimiter | undefined;
}

/**
 * The app as an edge serves it. `env` is each runtime's bindings, which the
 * app reads through request-context.ts (a method, so any app's own bindings
 * type is accepted).
 */
export interface FetchApp {
  fetch(request: Request, env: unknown): Response | Promise<Response>;
}

export interface ServedApp extends FetchApp {
  /** Per-route settings (route-settings.ts), validated before the app serves. Not `routes`: a Hono app has its own. */
  routeSettings?: readonly RouteSetting[];
}

/** The app as the edges serve it: its route settings compiled into a lookup (compileApp). */
export interface CompiledApp extends FetchApp {
  limitsFor: LimitsFor | undefined;
}

/** Validates the app's route settings; throws RouteSettingsError listing every problem. */
export function compileApp(app: ServedApp): CompiledApp {
  const limitsFor = compileRouteSettings(app.routeSettings ?? []);
  return { fetch: app.fetch.bind(app), limitsFor };
}
