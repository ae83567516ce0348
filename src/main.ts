import { ConfigError, loadConfig } from './config/load.js';
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
 * handlers and exits. Config is validated before anything listens; the app is
 * loaded after `listen`, so /healthz answers while it loads and /readyz turns
 * 200 once it has.
 */

export interface AppDeps {
  config: Config;
  log: Logger;
  health: Health;
  /** Aborted when shutdown begins. */
  shutdownSignal: AbortSignal;
  onCleanup: Lifecycle['onCleanup'];
}

/** What the app hands the runtime: its fetch, and optionally per-route settings (route-settings.ts). */
export type App = ServedApp;

export type LoadApp = (deps: AppDeps) => Promise<App>;

/** One-off commands, `node dist/server.js NAME`: they run and exit, nothing listens. */
export type Command = (deps: { config: Config; log: Logger }) => Promise<void>;

export async function main({ loadApp, commands = {} }: { loadApp: LoadApp; commands?: Record<string, Command> }) {
  const startedAt = performance.now();
  let config: Config;
  try {
    config = loadConfig(process.env);
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
    const command = commands[commandName];
    if (!command) {
      log.error('unknown command', { command: commandName, known: Object.keys(commands) });
      return exit(2);
    }
    try {
      await command({ config, log });
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
  // every forgotten catch in a dependency's error path into an outage (README, Faults).
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
  const app = loadApp({ config, log, health, shutdownSignal: lifecycle.signal, onCleanup: lifecycle.onCleanup }).then(
    compileApp,
  );
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
