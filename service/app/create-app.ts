import { Hono } from 'hono';
import type { Logger } from 'runway';
import { HttpProblem, problemNotFound, problemOnError } from 'runway/hono';
import type { Db } from 'runway/postgres';
import { databaseProblem } from 'runway/postgres';
import type { NotesEnv } from '../env.js';
import { bearerAuth } from './auth.js';
import type { Env } from './env.js';
import { notesRoutes } from './notes/routes.js';

/**
 * The application: routes only. It receives what it needs and has no side
 * effects at import, so tests build it in memory and the runtime serves it.
 */
export interface AppOptions {
  /** The notes variables (../env.ts), parsed. */
  env: NotesEnv;
  log: Logger;
  /** Undefined when no DATABASE_URL is set. */
  db: Db | undefined;
}

export function createApp({ env, log, db }: AppOptions) {
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

  if (db && env.JWT_SIGNING_KEY) {
    app.use(
      '/v1/*',
      bearerAuth({
        signingKey: env.JWT_SIGNING_KEY,
        issuer: env.JWT_ISSUER,
        audience: env.JWT_AUDIENCE,
        clockSkewMs: env.JWT_CLOCK_SKEW_MS,
        maxLifetimeMs: env.JWT_MAX_LIFETIME_MS,
      }),
    );
    app.route('/v1/notes', notesRoutes(db, { idempotencyRetentionMs: env.IDEMPOTENCY_RETENTION_MS }));
  } else {
    const missing = db ? 'JWT_SIGNING_KEY' : 'DATABASE_URL';
    app.all('/v1/*', () => {
      throw new HttpProblem(503, { code: 'not_configured', detail: `the API needs ${missing}` });
    });
  }
  return app;
}
