import { runNode } from '../src/cli/run-node.js';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './embedded-postgres.js';

/**
 * Runs the server for `npm start` and `npm run dev`. Without DATABASE_URL
 * outside production it first starts the embedded Postgres (persisted under
 * .data/), has the server migrate it, and says so in one warning line. In
 * production without DATABASE_URL nothing is started for it: the server
 * refuses to start, as it must. Signals are passed on, so Ctrl-C drains the
 * server as SIGTERM would. Resolves with the server's exit code.
 */
export async function serveLocally(nodeArgs: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...extraEnv, ...process.env };
  let embedded: EmbeddedPostgres | undefined;
  if (!env.DATABASE_URL && env.NODE_ENV !== 'production' && !env.K_SERVICE) {
    embedded = await startEmbeddedPostgres();
    env.DATABASE_URL = embedded.url;
    env.DB_POOL_MAX = '1';
    env.MIGRATE_ON_START ??= 'true';
    console.log(
      JSON.stringify({
        severity: 'WARNING',
        message: 'no DATABASE_URL: using the embedded Postgres in .data/pglite (local runs only)',
        time: new Date().toISOString(),
      }),
    );
  }

  const code = await runNode(nodeArgs, env);
  await embedded?.stop();
  return code;
}
