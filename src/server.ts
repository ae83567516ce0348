import { main } from './main.js';

// The bundle's entry. Swap the app here; the runtime stays as it is. The app
// and the database driver load after `listen` (dynamic imports stay lazy in
// the bundle), so /healthz answers while they load.
void main({
  loadApp: async (deps) => {
    const [{ createApp }, { openDatabase }, { startIdempotencySweep }, { startFeedSweep }] = await Promise.all([
      import('./app/create-app.js'),
      import('./db/open-database.js'),
      import('./app/notes/idempotency-sweep.js'),
      import('./app/notes/feed-sweep.js'),
    ]);
    const db = await openDatabase(deps);
    if (db) {
      // Both stop when shutdown begins, before the pool is ended.
      const { log, shutdownSignal: signal } = deps;
      startIdempotencySweep({ sql: db.sql, retentionMs: deps.config.idempotencyRetentionMs, log, signal });
      startFeedSweep({ sql: db.sql, retentionMs: deps.config.feedRetentionMs, log, signal });
    }
    return createApp({ ...deps, db });
  },
  commands: {
    migrate: async ({ config, log }) => {
      const { runMigrations } = await import('./db/open-database.js');
      await runMigrations(config, log);
    },
  },
});
