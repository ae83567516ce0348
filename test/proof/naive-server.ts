import { serve } from '@hono/node-server';
import { createApp } from '../../src/app/create-app.js';
import { loadConfig } from '../../src/config/load.js';
import { createDb } from '../../src/db/pool.js';
import { createLogger } from '../../src/runtime/logger.js';

// The baseline of the rollout test: the same app on Hono's plain serve(),
// with no runtime around it: no drain, a readiness route that is always 200,
// and SIGTERM's default (the process dies with whatever is in flight).
const config = loadConfig(process.env);
const log = createLogger({ level: 'warn' });
const db = createDb({ url: config.databaseUrl as string, ...config.db, log });
const app = createApp({ config, log, db });
app.get('/readyz', (c) => c.json({ status: 'ready' }));
serve({ fetch: app.fetch, port: config.server.port, hostname: config.server.host }, () => log.warn('started'));
