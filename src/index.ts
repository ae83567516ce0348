/**
 * `runway`: start the runtime for a service, and declare its variables.
 * The helpers a handler uses are in `runway/hono`, the database in
 * `runway/postgres`, the bundler settings in `runway/build`.
 */
export { doc, type EnvInput, type EnvOutput, type EnvPart, type EnvRule, secret } from './config/env-part.js';
export { ConfigError } from './config/load.js';
export { integer, MAX_TIMEOUT_MS, milliseconds } from './config/primitives.js';
export type { Config } from './config/schema.js';
export {
  type App,
  type Command,
  defineService,
  NoAppError,
  type Service,
  type SetupDeps,
  start,
  startEntry,
} from './main.js';
export type { Health, ReadinessCheck } from './runtime/health.js';
export type { CleanupHook } from './runtime/lifecycle.js';
export type { Fields, Logger, LogLevel } from './runtime/logger.js';
export type { RouteSetting } from './runtime/route-settings.js';
