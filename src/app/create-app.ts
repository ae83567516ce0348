import { Hono } from 'hono';
import type { Config } from '../config/schema.js';
import { databaseProblem } from '../db/errors.js';
import type { Db } from '../db/pool.js';
import { problemNotFound, problemOnError } from '../runtime/hono-errors.js';
import type { Logger } from '../runtime/logger.js';
import { HttpProblem } from '../runtime/problem.js';
import { bearerAuth } from './auth.js';
import type { Env } from './env.js';
import { notesRoutes } from './notes/routes.js';

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

export function createApp({ config, log, db }: AppOptions) {
  const app = new Hono<Env>();
  app.onError(
    problemOnError(log, (error) => {
      const problem = databaseProblem(error);
      if (problem?.code === 'invalid_value') {
        // Answered as the client's error, but it is a gap in validation: say so, without the value.
        log.warn('database refused a value that validation accepted', { sqlState: (error as { code: string }).code });
      }
      return problem;
    }),
  );
  app.notFound(problemNotFound(app));
  app.get('/', (c) => c.json({ name: 'runway' }));

  if (db && config.jwtSigningKey) {
    app.use(
      '/v1/*',
      bearerAuth({
        signingKey: config.jwtSigningKey,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
        clockSkewMs: config.jwtClockSkewMs,
        maxLifetimeMs: config.jwtMaxLifetimeMs,
      }),
    );
    app.route('/v1/notes', notesRoutes(db, { idempotencyRetentionMs: config.idempotencyRetentionMs }));
  } else {
    const missing = db ? 'JWT_SIGNING_KEY' : 'DATABASE_URL';
    app.all('/v1/*', () => {
      throw new HttpProblem(503, { code: 'not_configured', detail: `the API needs ${missing}` });
    });
  }
  return app;
}
