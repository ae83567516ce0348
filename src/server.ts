import { main } from './main.js';

// The bundle's entry. Swap the app here; the runtime stays as it is. The app
// and the database driver load after `listen` (dynamic imports stay lazy in
// the bundle), so /healthz answers while they load.
void main({
  loadApp: async (deps) => {
    const [{ createApp }, { openDatabase }, { startIdempotencySweep }] = await Promise.all([
      import('./app/create-app.js'),
      import('./db/open-database.js'),
      import('./app/notes/idempotency-sweep.js'),
    ]);
    const db = await openDatabase(deps);
    if (db) {
      // Stops when shutdown begins, before the pool is ended.
      startIdempotencySweep({
        sql: db.sql,
        retentionMs: deps.config.idempotencyRetentionMs,
        log: deps.log,
        signal: deps.shutdownSignal,
      });
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
