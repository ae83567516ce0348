import { Hono } from 'hono';
import type { Config } from '../config.js';
import type { Logger } from '../runtime/logger.js';

/**
 * The application: routes only. It receives what it needs and has no side
 * effects at import, so tests build it in memory and the runtime serves it.
 */
export interface AppOptions {
  config: Config;
  log: Logger;
}

export function createApp(_options: AppOptions) {
  const app = new Hono();
  app.get('/', (c) => c.json({ name: 'runway' }));
  return app;
}
