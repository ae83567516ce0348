import type { Command, SetupDeps } from 'runway';
import { env } from './env.js';

/**
 * The notes service, as `runway build service/server.ts` bundles it: its
 * variables (env.ts), its start-up hook and its one command. The app and the
 * database driver load inside setup, after `listen` (dynamic imports stay
 * lazy in the bundle), so /healthz answers while they load.
 */
export { env };

type Deps = SetupDeps<typeof env>;

export async function setup(deps: Deps) {
  const [{ createApp }, { openDatabase }, { migrations }, { startIdempotencySweep }, { startFeedSweep }] =
    await Promise.all([
      import('./app/create-app.js'),
      import('runway/postgres'),
      import('./migrations/index.js'),
      import('./app/notes/idempotency-sweep.js'),
      import('./app/notes/feed-sweep.js'),
    ]);
  const db = await openDatabase(deps, { migrations });
  const { log, shutdownSignal: signal } = deps;
  if (db) {
    // Both stop when shutdown begins, before the pool is ended.
    startIdempotencySweep({ sql: db.sql, retentionMs: deps.env.IDEMPOTENCY_RETENTION_MS, log, signal });
    startFeedSweep({ sql: db.sql, retentionMs: deps.env.FEED_RETENTION_MS, log, signal });
  }
  return createApp({ env: deps.env, log, db });
}

export const commands: Record<string, Command<typeof env>> = {
  migrate: async (deps) => {
    const [{ runMigrations }, { migrations }] = await Promise.all([
      import('runway/postgres'),
      import('./migrations/index.js'),
    ]);
    await runMigrations(deps, migrations);
  },
};
