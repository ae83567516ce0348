import { serveLocally } from './serve-local.js';

// `npm start`: the built bundle (or the entry given), with the embedded
// Postgres when no DATABASE_URL is set.
const entry = process.argv[2] ?? 'dist/server.js';
process.exitCode = await serveLocally(['--enable-source-maps', entry]);
