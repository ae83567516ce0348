import { main } from './main.js';

// The bundle's entry. Swap the app here; the runtime stays as it is. The app
// and the database driver load after `listen` (dynamic imports stay lazy in
// the bundle), so /healthz answers while they load.
void main({
  loadApp: async (deps) => {
    const [{ createApp }, { openDatabase }] = await Promise.all([
      import('./app/create-app.js'),
      import('./db/open-database.js'),
    ]);
    const db = await openDatabase(deps);
    return createApp({ ...deps, db });
  },
  commands: {
    migrate: async ({ config, log }) => {
      const { runMigrations } = await import('./db/open-database.js');
      await runMigrations(config, log);
    },
  },
});
