import { type Config, ConfigError, loadConfig } from './config.js';
import { createHealth, type Health } from './runtime/health.js';
import type { FetchApp } from './runtime/hono-listener.js';
import { createLifecycle, type Lifecycle } from './runtime/lifecycle.js';
import { createLineWriter } from './runtime/line-writer.js';
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

/** What the app hands the runtime: its fetch, and optionally per-route body limits. */
export interface App extends FetchApp {
  bodyLimitFor?: (method: string, url: string) => number | undefined;
}

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
    process.exit(1);
  }

  const out = createLineWriter(process.stdout);
  process.on('exit', out.flush);
  const log = createLogger({ level: config.logLevel, write: out.write });

  const commandName = process.argv[2];
  if (commandName !== undefined) {
    const command = commands[commandName];
    if (!command) {
      log.error('unknown command', { command: commandName, known: Object.keys(commands) });
      process.exit(2);
    }
    try {
      await command({ config, log });
      process.exit(0);
    } catch (error) {
      log.error('command failed', { command: commandName, ...errorFields(error) });
      process.exit(1);
    }
  }
  const health = createHealth({ defaultTimeoutMs: config.readinessTimeoutMs });
  const lifecycle = createLifecycle({
    log,
    health,
    shutdownDelayMs: config.shutdownDelayMs,
    gracefulTimeoutMs: config.gracefulTimeoutMs,
    cleanupTimeoutMs: config.cleanupTimeoutMs,
    exit: (code) => process.exit(code),
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => void lifecycle.shutdown({ signal }));
  }
  process.on('uncaughtException', (error) => void lifecycle.shutdown({ error }));
  process.on('unhandledRejection', (error) => void lifecycle.shutdown({ error }));

  const shedder = createLoadShedder({
    maxInFlight: config.maxInflightRequests,
    maxEventLoopDelayMs: config.maxEventLoopDelayMs,
    log,
  });
  if (config.maxEventLoopDelayMs > 0) health.register('event_loop', () => !shedder.overloaded);
  const rateLimiter = config.rateLimit && createRateLimiter(config.rateLimit);
  const server = await createServerAdapter({ ...config, health, log, shedder, rateLimiter });
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
    log.error('could not listen', { port: config.port, host: config.host, ...errorFields(error) });
    process.exit(1);
  }

  const app = loadApp({ config, log, health, shutdownSignal: lifecycle.signal, onCleanup: lifecycle.onCleanup });
  server.serve(app);
  try {
    await app;
    health.markStarted();
    shedder.start();
    log.info('started', { startupMs: Math.round(performance.now() - startedAt) });
  } catch (error) {
    // The lifecycle logs the error with its stack as the fatal error; this line says where.
    log.error('app failed to start');
    await lifecycle.shutdown({ error });
  }
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
