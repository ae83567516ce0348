import * as v from 'valibot';
import type { Trust } from '../runtime/client-ip.js';
import type { ServerSettings } from '../runtime/edge-options.js';
import { LOG_FLUSH_TIMEOUT_MS } from '../runtime/line-writer.js';
import type { EnvPart, EnvRule } from './env-part.js';
import { detectPlatform, shutdownBudget } from './platforms.js';
import { type RuntimeEnv, RuntimeEnvSchema } from './variables.js';

/**
 * The runtime's variables (variables.ts), their cross-checks, and the Config
 * the process gets from them. Checked together with every other part's
 * (load.ts), so every problem is found at once.
 */

// Written as one pipe on the runtime's schema so that each check is typed by it; composeEnv takes the actions.
const checked = v.pipe(
  RuntimeEnvSchema,
  v.forward(
    v.partialCheck(
      [['RATE_LIMIT_BURST'], ['RATE_LIMIT_RPS']],
      (env) => env.RATE_LIMIT_BURST === undefined || env.RATE_LIMIT_RPS !== undefined,
      'has no effect without RATE_LIMIT_RPS: set both, or neither',
    ),
    ['RATE_LIMIT_BURST'],
  ),
  v.forward(
    v.partialCheck(
      [['MAX_BUFFERED_BODY_BYTES'], ['BODY_LIMIT_BYTES']],
      (env) => env.MAX_BUFFERED_BODY_BYTES === 0 || env.MAX_BUFFERED_BODY_BYTES >= env.BODY_LIMIT_BYTES,
      // Otherwise a body within the limit could never be accepted.
      'must be 0 or at least BODY_LIMIT_BYTES',
    ),
    ['MAX_BUFFERED_BODY_BYTES'],
  ),
  v.forward(
    v.partialCheck(
      [['READ_HEADER_TIMEOUT_MS'], ['READ_TIMEOUT_MS']],
      (env) => env.READ_HEADER_TIMEOUT_MS <= env.READ_TIMEOUT_MS,
      // Node throws at listen time otherwise; say it at load time instead.
      'must not exceed READ_TIMEOUT_MS (the header read is part of the request read)',
    ),
    ['READ_HEADER_TIMEOUT_MS'],
  ),
  v.forward(
    v.partialCheck(
      [
        ['SHUTDOWN_DELAY_MS'],
        ['GRACEFUL_TIMEOUT_MS'],
        ['CLEANUP_TIMEOUT_MS'],
        ['TERMINATION_GRACE_MS'],
        ['K_SERVICE'],
        ['ECS_CONTAINER_METADATA_URI_V4'],
        ['KUBERNETES_SERVICE_HOST'],
      ],
      (env) => {
        const budget = shutdownBudget(env as RuntimeEnv);
        return (
          env.SHUTDOWN_DELAY_MS + budget.gracefulTimeoutMs + env.CLEANUP_TIMEOUT_MS + LOG_FLUSH_TIMEOUT_MS <
          budget.terminationGraceMs
        );
      },
      (issue) => {
        const env = issue.input as RuntimeEnv;
        const budget = shutdownBudget(env);
        const total = env.SHUTDOWN_DELAY_MS + budget.gracefulTimeoutMs + env.CLEANUP_TIMEOUT_MS + LOG_FLUSH_TIMEOUT_MS;
        return (
          `SHUTDOWN_DELAY_MS (${env.SHUTDOWN_DELAY_MS}) + GRACEFUL_TIMEOUT_MS (${budget.gracefulTimeoutMs}) + ` +
          `CLEANUP_TIMEOUT_MS (${env.CLEANUP_TIMEOUT_MS}) + ${LOG_FLUSH_TIMEOUT_MS} ms to flush the last log lines = ` +
          `${total} ms must be shorter than the termination grace ` +
          `(${budget.terminationGraceMs} ms, ${budget.graceSource}), or the platform kills the process mid-drain: ` +
          'lower those timeouts or raise the grace (and TERMINATION_GRACE_MS with it)'
        );
      },
    ),
    ['GRACEFUL_TIMEOUT_MS'],
  ),
);
const rules = checked.pipe.slice(1) as EnvRule[];

/** The runtime's own variables and their cross-checks, the first part of every composed env. */
export const runtimeEnv: EnvPart = { name: 'runtime', schema: RuntimeEnvSchema, rules };

/** The Config the process gets from the runtime's variables, once they passed. */
export function runtimeConfigOf(env: RuntimeEnv) {
  const platform = detectPlatform(env);
  const budget = shutdownBudget(env);
  return {
    platform,
    production: env.NODE_ENV === 'production',
    logLevel: env.LOG_LEVEL,
    // What the server edge reads (edges get this object only: no secret is in it).
    server: {
      port: env.PORT,
      host: env.HOST,
      readHeaderTimeoutMs: env.READ_HEADER_TIMEOUT_MS,
      readTimeoutMs: env.READ_TIMEOUT_MS,
      writeTimeoutMs: env.WRITE_TIMEOUT_MS,
      writeMinRateBps: env.WRITE_MIN_RATE_BPS,
      idleTimeoutMs: env.IDLE_TIMEOUT_MS,
      handlerTimeoutMs: env.HANDLER_TIMEOUT_MS,
      bodyLimitBytes: env.BODY_LIMIT_BYTES,
      maxBufferedBodyBytes: env.MAX_BUFFERED_BODY_BYTES,
      trust: env.TRUSTED_PROXIES ?? ({ kind: 'none' } as Trust),
      logHealthChecks: env.LOG_HEALTH_CHECKS,
      projectId: env.GOOGLE_CLOUD_PROJECT,
      websocket: {
        maxMessageBytes: env.WEBSOCKET_MAX_MESSAGE_BYTES,
        idleTimeoutMs: env.WEBSOCKET_IDLE_TIMEOUT_MS,
        maxConnections: env.WEBSOCKET_MAX_CONNECTIONS,
        origins: env.WEBSOCKET_ORIGINS ?? [],
      },
    } satisfies ServerSettings,
    // What the lifecycle's drain reads.
    shutdown: {
      shutdownDelayMs: env.SHUTDOWN_DELAY_MS,
      gracefulTimeoutMs: budget.gracefulTimeoutMs,
      cleanupTimeoutMs: env.CLEANUP_TIMEOUT_MS,
      terminationGraceMs: budget.terminationGraceMs,
    },
    readinessTimeoutMs: env.READINESS_TIMEOUT_MS,
    // What the load shedder and the rate limiter read.
    overload: {
      maxInflightRequests: env.MAX_INFLIGHT_REQUESTS,
      maxEventLoopDelayMs: env.MAX_EVENT_LOOP_DELAY_MS,
      rateLimit:
        env.RATE_LIMIT_RPS === undefined
          ? undefined
          : { rps: env.RATE_LIMIT_RPS, burst: env.RATE_LIMIT_BURST ?? env.RATE_LIMIT_RPS },
    },
  };
}

export type Config = ReturnType<typeof runtimeConfigOf>;
