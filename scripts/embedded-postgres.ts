import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * An embedded Postgres for local runs: PGlite (Postgres compiled to WASM)
 * served on loopback by pglite-socket, so the app connects through the very
 * same postgres.js code path as in production. Dev tooling only: it is a
 * devDependency and never part of dist/server.js.
 */
export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(dataDir = '.data/pglite'): Promise<EmbeddedPostgres> {
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  // PGlite is one backend: more than one client connection would interleave
  // statements of different transactions. Pair it with DB_POOL_MAX=1.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 1 });
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
