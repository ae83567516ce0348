import { serve } from '@hono/node-server';
import { createApp } from '../../service/app/create-app.js';
import { env as notesParts } from '../../service/env.js';
import { type EnvOutput, partsOf } from '../../src/config/env-part.js';
import { composeEnv, loadEnv } from '../../src/config/load.js';
import { poolFor } from '../../src/db/open-database.js';
import { createLogger } from '../../src/runtime/logger.js';

// The baseline of the rollout test: the same app on Hono's plain serve(),
// with no runtime around it: no drain, a readiness route that is always 200,
// and SIGTERM's default (the process dies with whatever is in flight).
const { config, env } = loadEnv<EnvOutput<typeof notesParts>>(process.env, composeEnv(partsOf(notesParts)));
const log = createLogger({ level: 'warn' });
const db = poolFor(env, log, env.DATABASE_URL as string);
const app = createApp({ env, log, db });
app.get('/readyz', (c) => c.json({ status: 'ready' }));
serve({ fetch: app.fetch, port: config.server.port, hostname: config.server.host }, () => log.warn('started'));
