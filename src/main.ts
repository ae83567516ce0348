import { type EnvInput, type EnvOutput, partsOf } from './config/env-part.js';
import { ConfigError, composeEnv, EnvPartError, loadEnv } from './config/load.js';
import type { Config } from './config/schema.js';
import { compileApp, type ServedApp } from './runtime/edge-options.js';
import { createHealth, type Health } from './runtime/health.js';
import { createLifecycle, type Lifecycle } from './runtime/lifecycle.js';
import { createLineWriter, drained, LOG_FLUSH_TIMEOUT_MS } from './runtime/line-writer.js';
import { createLoadShedder } from './runtime/load-shedder.js';
import { createLogger, errorFields, type Logger } from './runtime/logger.js';
import { createRateLimiter } from './runtime/rate-limit.js';
import { createServerAdapter } from './runtime/server-adapter.js';

/**
 * The process: the only place that reads `process.env`, installs signal
 * handlers and exits. Every variable (the runtime's, each module's, the
 * app's) is validated before anything listens; the app's start-up hook runs
 * after `listen`, so /healthz answers while it runs and /readyz turns 200
 * once it has.
 */

/** What the app's start-up hook and its commands get. `env` is every declared variable, parsed. */
export interface SetupDeps<TEnvIn extends EnvInput | undefined = undefined> {
  /** The runtime's own settings (variables.ts), parsed. */
  config: Config;
  env: EnvOutput<TEnvIn>;
  log: Logger;
  health: Health;
  /** Aborted when shutdown begins. */
  shutdownSignal: AbortSignal;
  onCleanup: Lifecycle['onCleanup'];
}

/** What the runtime serves: a Hono app or any `{ fetch }`, optionally with per-route settings (route-settings.ts). */
export type App = ServedApp;

/** One-off commands, `node dist/server.js NAME`: they run and exit, nothing listens. */
export type Command<TEnvIn extends EnvInput | undefined = undefined> = (
  deps: Pick<SetupDeps<TEnvIn>, 'config' | 'env' | 'log'>,
) => Promise<void>;

/**
 * A service, as `start` takes it and as a `runway build` entry module exports it: `default` is `app`.
 * At least one of `app` and `setup` gives the app.
 */
export interface Service<TEnvIn extends EnvInput | undefined = undefined> {
  /** The app's variables: a valibot `v.object` of strings, a module's part (`postgresEnv()`), or a list of them. */
  env?: TEnvIn;
  /** Served unless `setup` returns an app. */
  app?: App;
  /** Start-up hook, run after listen and before serving (open a pool, warm a cache); may return the app. */
  setup?: (deps: SetupDeps<TEnvIn>) => Promise<App | undefined> | App | undefined;
  commands?: Record<string, Command<TEnvIn>>;
}

/** Types a service's hooks from its env; returns it unchanged. */
export function defineService<const TEnvIn extends EnvInput | undefined = undefined>(
  service: Service<TEnvIn>,
): Service<TEnvIn> {
  return service;
}

/** The error a service without an app gets, at start-up. */
export class NoAppError extends Error {
  override name = 'NoAppError';
}

function appOf(app: unknown): App {
  if (typeof (app as { fetch?: unknown } | undefined)?.fetch !== 'function') {
    throw new NoAppError(
      'the service gave no app: export a Hono app (or any { fetch }) as default, or return one from setup',
    );
  }
  return app as App;
}

/** Starts the runtime for a service: validates the env, listens, runs `setup`, serves, drains on SIGTERM. */
export async function start<const TEnvIn extends EnvInput | undefined = undefined>(service: Service<TEnvIn>) {
  return run(service as Service<EnvInput | undefined>);
}

/**
 * What `runway build`'s generated entry calls with the service module (or its import, so that a module
 * that throws as it loads is reported as a start-up failure, not a raw error): its `default` export is
 * the app, `env`, `setup` and `commands` as in Service.
 */
export async function startEntry(module: Record<string, unknown> | Promise<Record<string, unknown>>) {
  let loaded: Record<string, unknown>;
  try {
    loaded = await module;
  } catch (error) {
    // No config yet, so no logger: one JSON line on stderr, as a config error is reported.
    const entry = { severity: 'ERROR', message: 'the service failed to load', time: new Date().toISOString() };
    process.stderr.write(`${JSON.stringify({ ...entry, ...errorFields(error) })}\n`);
    await drained(process.stderr);
    process.exit(1);
  }
  const { default: app, env, setup, commands } = loaded as Service<EnvInput | undefined> & { default?: App };
  return run({ app, env, setup, commands });
}

async function run({ env: envInput, app: served, setup, commands = {} }: Service<EnvInput | undefined>) {
  const startedAt = performance.now();
  let config: Config;
  let env: EnvOutput<EnvInput>;
  try {
    ({ config, env } = loadEnv<EnvOutput<EnvInput>>(process.env, composeEnv(partsOf(envInput))));
  } catch (error) {
    reportConfigError(error);
    await drained(process.stderr);
    process.exit(1);
  }

  const out = createLineWriter(process.stdout);
  process.on('exit', out.flush);
  let drainStartedAt: number | undefined;
  // Every exit goes through here: the last lines reach a slow log reader (line-writer.ts),
  // for as long as the platform's grace allows after a drain, LOG_FLUSH_TIMEOUT_MS otherwise.
  const exit = async (code: number, now = false): Promise<never> => {
    const graceLeftMs =
      drainStartedAt === undefined
        ? 0
        : config.shutdown.terminationGraceMs - (performance.now() - drainStartedAt) - EXIT_MARGIN_MS;
    await out.drain(now ? LOG_FLUSH_TIMEOUT_MS : Math.max(LOG_FLUSH_TIMEOUT_MS, graceLeftMs));
    process.exit(code);
  };
  const log = createLogger({ level: config.logLevel, write: out.write });

  const commandName = process.argv[2];
  if (commandName !== undefined) {
    // Own properties only: `constructor` or `__proto__` is not a command.
    const command = Object.hasOwn(commands, commandName) ? commands[commandName] : undefined;
    if (!command) {
      log.error('unknown command', { command: commandName, known: Object.keys(commands) });
      return exit(2);
    }
    try {
      await command({ config, env, log });
    } catch (error) {
      log.error('command failed', { command: commandName, ...errorFields(error) });
      return exit(1);
    }
    return exit(0);
  }
  const health = createHealth({ defaultTimeoutMs: config.readinessTimeoutMs, log });
  const lifecycle = createLifecycle({
    log,
    health,
    shutdownDelayMs: config.shutdown.shutdownDelayMs,
    gracefulTimeoutMs: config.shutdown.gracefulTimeoutMs,
    cleanupTimeoutMs: config.shutdown.cleanupTimeoutMs,
    exit: (code, now) => void exit(code, now),
  });
  lifecycle.signal.addEventListener('abort', () => {
    drainStartedAt = performance.now();
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => void lifecycle.shutdown({ signal }));
  }
  // A throw that escaped a callback may have left state half-updated: drain and exit 1.
  process.on('uncaughtException', (error) => void lifecycle.shutdown({ error }));
  // A rejection nobody handled has changed no state; ending the process for it turns
  // every forgotten catch in a dependency's error path into an outage (docs/proof.md, Faults).
  process.on('unhandledRejection', reportUnhandledRejection(log));

  const shedder = createLoadShedder({
    maxInFlight: config.overload.maxInflightRequests,
    maxEventLoopDelayMs: config.overload.maxEventLoopDelayMs,
    log,
  });
  if (config.overload.maxEventLoopDelayMs > 0) health.register('event_loop', () => !shedder.overloaded);
  const rateLimiter = config.overload.rateLimit && createRateLimiter(config.overload.rateLimit);
  // The server gets its own settings only: no secret reaches it.
  const server = await createServerAdapter({ ...config.server, health, log, shedder, rateLimiter });
  lifecycle.addDrainable(server);

  try {
    const address = await server.listen(lifecycle.stopAcceptingSignal);
    log.info('listening', {
      address: address.address,
      port: address.port,
      platform: config.platform,
      runtime: server.runtime,
    });
  } catch (error) {
    log.error('could not listen', { port: config.server.port, host: config.server.host, ...errorFields(error) });
    return exit(1);
  }

  // The app's route settings are validated once it has loaded, before it serves: a wrong table fails the start.
  const deps = { config, env, log, health, shutdownSignal: lifecycle.signal, onCleanup: lifecycle.onCleanup };
  const app = Promise.resolve()
    .then(() => setup?.(deps))
    .then((fromSetup) => compileApp(appOf(fromSetup ?? served)));
  server.serve(app);
  try {
    await app;
    health.markStarted();
    shedder.start();
    log.info('started', { startupMs: Math.round(performance.now() - startedAt) });
  } catch (error) {
    // A shutdown that began while the app loaded (a signal during a start-up that
    // waits for the database) is already draining; the load is simply abandoned.
    if (lifecycle.signal.aborted) return log.info('app start abandoned: shutting down');
    // The lifecycle logs the error with its stack as the fatal error; this line says where.
    log.error('app failed to start');
    await lifecycle.shutdown({ error });
  }
}

const UNHANDLED_LOG_EVERY_MS = 1_000;
// Exit this long before the platform's SIGKILL, so the exit code is ours, not the kill's.
const EXIT_MARGIN_MS = 500;

/** One ERROR line, with the stack, per second at most; the lines between are counted. */
function reportUnhandledRejection(log: Logger) {
  let lastAt = 0;
  let suppressed = 0;
  return (reason: unknown) => {
    const now = Date.now();
    if (now - lastAt < UNHANDLED_LOG_EVERY_MS) {
      suppressed++;
      return;
    }
    lastAt = now;
    log.error('unhandled rejection', { suppressed, ...errorFields(reason) });
    suppressed = 0;
  };
}

function reportConfigError(error: unknown) {
  if (error instanceof EnvPartError) {
    process.stderr.write(`runway: ${error.message}\n`);
    return;
  }
  if (!(error instanceof ConfigError)) {
    process.stderr.write(`${String(error instanceof Error ? error.stack : error)}\n`);
    return;
  }
  if (process.stderr.isTTY) {
    process.stderr.write(`runway: ${error.message}\n`);
    return;
  }
  const entry = {
    severity: 'ERROR',
    message: 'invalid configuration',
    time: new Date().toISOString(),
    problems: error.problems,
  };
  process.stderr.write(`${JSON.stringify(entry)}\n`);
}
