import type { HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import type { Config } from '../config.js';
import { databaseProblem } from '../db/errors.js';
import type { Db } from '../db/pool.js';
import { problemNotFound, problemOnError } from '../runtime/hono-errors.js';
import type { Logger } from '../runtime/logger.js';

/**
 * The application: routes only. It receives what it needs and has no side
 * effects at import, so tests build it in memory and the runtime serves it.
 */
export interface AppOptions {
  config: Config;
  log: Logger;
  /** Undefined when no DATABASE_URL is set. */
  db: Db | undefined;
}

export type Env = { Bindings: HttpBindings };

export function createApp({ log }: AppOptions) {
  const app = new Hono<Env>();
  app.onError(problemOnError(log, databaseProblem));
  app.notFound(problemNotFound(app));
  app.get('/', (c) => c.json({ name: 'runway' }));
  return app;
}
