import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import type { Plugin } from 'esbuild';

/**
 * Fixes to postgres.js (3.4.9, the current release) for defects that take a
 * process down, applied to its source when it is bundled (esbuild plugin) and
 * when the tests load it (vite plugin in vitest.config.ts), so the bundle and
 * the tests run the same driver. Each patch names its upstream report; each
 * has a test that fails without it (test/db/driver-patches.test.ts). A patch
 * whose text is no longer found fails the build: upstream changed that code,
 * so check whether the release fixed the defect and drop the patch.
 */

export interface SourcePatch {
  /** Path inside the postgres package. */
  file: string;
  upstream: string;
  why: string;
  find: string;
  replace: string;
}

/** sql.begin()'s try/catch in postgres.js src/index.js, with `catchLines` in its catch (and `declare` after its locals). */
function beginBlock(catchLines: string[], declare?: string): string {
  return [
    '      , prepare = null',
    ...(declare ? [declare] : []),
    '',
    '    try {',
    "      await sql.unsafe('begin ' + options.replace(/[^a-z ]/ig, ''), [], { onexecute }).execute()",
    '      return await Promise.race([',
    '        scope(connection, fn),',
    '        new Promise((_, reject) => connection.onclose = reject)',
    '      ])',
    '    } catch (error) {',
    ...catchLines,
    '    }',
    '',
  ].join('\n');
}

export const postgresPatches: SourcePatch[] = [
  {
    file: 'src/query.js',
    upstream: 'no upstream report found; same family as porsager/postgres#1192',
    why:
      'Query.cancel() starts the cancel (a CancelRequest over a new connection) and returns null, dropping ' +
      'that promise: when the database is unreachable it rejects with nobody to catch it, an unhandled rejection. Return it, so the caller can.',
    find: 'return this.canceller && (this.canceller(this), this.canceller = null)',
    replace: 'const canceller = this.canceller; this.canceller = null; return canceller ? canceller(this) : null',
  },
  {
    file: 'src/connection.js',
    upstream: 'porsager/postgres#1208 (fix PR #1209 open), #1154, #1066',
    why:
      'A query sent on a connection whose socket is gone (the rollback sql.begin sends after a query failed on a ' +
      'dead connection, the next query on a reserved one) is written from a setImmediate to socket = null: an ' +
      'uncaught TypeError, and the query never settles. Settle what the connection holds with CONNECTION_CLOSED instead. ' +
      'It returns true, as a write that went out would: false would make a caller move the dead connection from the ' +
      '"closed" queue to "full", where the pool never reconnects it.',
    find: '  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)\n',
    replace: [
      '  function nextWrite(fn) {',
      '    if (socket === null) {',
      '      nextWriteTimer !== null && clearImmediate(nextWriteTimer)',
      '      chunk = nextWriteTimer = null',
      "      const err = Errors.connection('CONNECTION_CLOSED', options)",
      '      query && (queryError(query, err), query = null)',
      '      while (sent.length)',
      '        queryError(sent.shift(), err)',
      '      return true',
      '    }',
      '    const x = socket.write(chunk, fn)',
      '',
    ].join('\n'),
  },
  {
    file: 'src/connection.js',
    upstream: 'porsager/postgres#1223 (no fix PR)',
    why:
      'A backend terminated while it runs a query (pg_terminate_backend, a fast shutdown) sends its FATAL ErrorResponse ' +
      'and closes; the query is rejected with CONNECTION_CLOSED but the ErrorResponse stays on the connection, and the ' +
      'first query after the reconnect is failed with that old error (57P01) although it ran nowhere. Forget it with the socket.',
    find: '    socket.removeAllListeners()\n    socket = null\n',
    replace: '    socket.removeAllListeners()\n    socket = null\n    errorResponse = null\n',
  },
  {
    file: 'src/connection.js',
    upstream: 'porsager/postgres#1193 (fix PR #1214 open)',
    why:
      'A server that accepts the TCP connection and closes it cleanly during startup (a proxy or port forward whose ' +
      'database is not up) leaves the waiting query pending forever while the driver reconnects with no delay, ' +
      'thousands of times a second; connect_timeout cannot fire because every close cancels it. With one host and no ' +
      'target_session_attrs there is nowhere else to try: reject the query with CONNECTION_CLOSED, as for any other close.',
    find: '    if (initial)\n      return reconnect()\n',
    replace: [
      '    if (initial && (target_session_attrs || options.host.length > 1))',
      '      return reconnect()',
      '',
      "    initial && error(Errors.connection('CONNECTION_CLOSED', options, socket))",
      '',
    ].join('\n'),
  },
  {
    file: 'src/connection.js',
    upstream: 'no upstream report found; same path as porsager/postgres#1208 and the hang noted in PR #1168',
    why:
      'A reset (ECONNRESET) emits "error" at once and "close" only in the close phase of the loop; a query sent in ' +
      'between (the next request on a busy pool, the next query on a reserved connection) is queued on the dead ' +
      'connection, and closed(hadError = true) rejects nothing, so it never settles. Reject whatever is still queued on every close.',
    find: '    !hadError && (query || sent.length) && error(',
    replace: '    if (query || sent.length) error(',
  },
  {
    file: 'src/connection.js',
    upstream: 'porsager/postgres#1130 (fix PR #1142 open), #1097',
    why:
      'After a query failed with its connection (reset, kill -9, pg_terminate_backend) the connection still holds it as ' +
      'the running query, and end() waits for its ReadyForQuery, which no socket will send: sql.end() without a timeout ' +
      'never returns, and with one it always takes the whole timeout. The same when end() was already waiting when the ' +
      'connection died. Forget the query with the socket and finish a waiting end().',
    find: '    closedTime = performance.now()\n',
    replace: '    query = null\n    ended && terminate()\n    closedTime = performance.now()\n',
  },
  {
    file: 'src/connection.js',
    upstream: 'porsager/postgres#1192, #1205 (and #279, #1223; no fix PR)',
    why:
      'ReadyForQuery starts fetchArrayTypes() (fetch_types, the array types query on every new connection) and drops its ' +
      'promise: when that query fails (cancelled by statement_timeout, permission denied, the connection closed) the ' +
      'rejection is unhandled and Node exits. The waiting query already gets the same error (errored() rejects it), so ' +
      'nothing is lost by catching the dropped one.',
    find: 'return fetchArrayTypes()\n',
    replace: 'return fetchArrayTypes().catch(noop)\n',
  },
  {
    file: 'src/connection.js',
    upstream: 'no upstream report found (nearest: porsager/postgres#1181, #1119)',
    why:
      'A query pipelined behind another on one connection and cancelled before its turn is skipped when its turn ' +
      'comes (a CancelRequest is sent for it, and the next sent query is made the running one), but it was already ' +
      "sent: its answer still arrives, and is taken for the next query's. Measured: a third query resolved with the " +
      "second's rows, and the second never settled; under load that hands one request another's rows, or a DataRow " +
      'parsed with the wrong columns. Keep each sent query in its turn; a cancelled one is cancelled on the server ' +
      'and settles with its own answer (57014, or its rows when the cancel came too late).',
    find:
      '    while (sent.length && (query = sent.shift()) && (query.active = true, query.cancelled))\n' +
      '      Connection(options).cancel(query.state, query.cancelled.resolve, query.cancelled.reject)\n',
    replace: [
      '    if (sent.length) {',
      '      query = sent.shift()',
      '      query.active = true',
      // Marked as the late-cancel patch below expects.
      '      query.cancelled && (q => (q.cancelInFlight = true, Connection(options).cancel(q.state, ' +
        'x => (q.cancelInFlight = false, q.cancelled.resolve(x)), x => (q.cancelInFlight = false, q.cancelled.reject(x)))))(query)',
      '    }',
      '',
    ].join('\n'),
  },
  {
    file: 'src/connection.js',
    upstream: 'no upstream report found',
    why:
      'The query that opens a connection, cancelled while the connection is still being established, is skipped once ' +
      'the connection is ready, and ReadyForQuery returns before handing the connection back to the pool: it stays ' +
      'connected, idle and out of the pool for good (measured: a pool of one then never ran another query; the chaos ' +
      'campaign saw runway connections above the pool baseline after client aborts). Hand it back as any idle one.',
    find:
      '      initial && !initial.reserve && execute(initial)\n' +
      '      options.shared.retries = retries = 0\n' +
      '      initial = null\n' +
      '      return\n',
    replace: [
      '      const skipped = initial && !initial.reserve && initial.cancelled',
      '      initial && !initial.reserve && !skipped && execute(initial)',
      '      options.shared.retries = retries = 0',
      '      initial = null',
      '      if (!skipped)',
      '        return',
      '',
    ].join('\n'),
  },
  {
    file: 'src/index.js',
    upstream: 'no upstream report found',
    why:
      'A CancelRequest names a backend, not a query: Postgres cancels whatever that backend runs when it arrives. ' +
      'The cancel of a running query goes over a new connection; when the query ends first (it finished, or failed), ' +
      'the driver hands its connection to the next query at once, and the late cancel kills that one: the chaos ' +
      'campaign saw a fresh request answered 503 query_timeout (57014) within milliseconds after an abort. Mark a ' +
      'query whose cancel is on its way (the connection.js patch below keeps its connection out of the pool).',
    find: '          ? Connection(options).cancel(query.state, resolve, reject)\n',
    replace:
      '          ? (query.cancelInFlight = true, Connection(options).cancel(query.state, ' +
      'x => (query.cancelInFlight = false, resolve(x)), x => (query.cancelInFlight = false, reject(x))))\n',
  },
  {
    file: 'src/connection.js',
    upstream: 'no upstream report found',
    why:
      'When a query ends while its cancel is still on its way, close its connection instead of handing it to the next ' +
      'query (idle in the pool, or the next statement of a transaction), so the late cancel finds no statement of ours. ' +
      'It leaves the pool at once, as end() takes a connection out, so no query is routed to it while it closes; the ' +
      'pool opens a new one when one is needed. The cost is that reconnect after an aborted query. Still exposed: a ' +
      'query postgres.js pipelined behind the cancelled one (it does so on busy connections when the pool is ' +
      'saturated) may take the late cancel while it runs; it then fails with 57014 (a 503), never with wrong rows. ' +
      'Queries sent after the pipeline drained do not: the connection is closed then (the next patch).',
    find: '  function ReadyForQuery(x) {\n    if (query) {\n',
    replace: ['  function ReadyForQuery(x) {', '    const finished = query', '    if (query) {', ''].join('\n'),
  },
  {
    file: 'src/connection.js',
    upstream: 'no upstream report found',
    why:
      'The hand-over the patch above holds back: after the queries pipelined behind the cancelled one (the hostile ' +
      'review saw a query sent after both answered 503 query_timeout when the late cancel arrived, 5 runs of 6), ' +
      'before the pool or a transaction gets the connection.',
    find: '    if (query)\n      return // Consider opening if able and sent.length < 50\n',
    replace: [
      // Remembered across the queries pipelined behind it: the hand-over comes only after the last of them.
      '    finished && finished.cancelInFlight && (connection.lateCancel = finished)',
      '    if (query)',
      '      return // Consider opening if able and sent.length < 50',
      '',
      '    if (connection.lateCancel && connection.lateCancel.cancelInFlight)',
      '      return (connection.lateCancel = null, !connection.reserved && onend(connection), terminate())',
      '    connection.lateCancel = null',
      '',
    ].join('\n'),
  },
  {
    file: 'src/index.js',
    upstream: 'no upstream report found',
    why:
      'sql.begin() gets its connection back from the pool only when the server says the transaction is over ' +
      '(ReadyForQuery "idle"). When the ROLLBACK it sends after a failed query fails itself (a late CancelRequest ' +
      'lands on it: the chaos campaign saw one under 1500 ms of latency) or the COMMIT is cancelled before it ran, ' +
      'the transaction is still open, aborted, and the connection stays reserved for a transaction that ended: ' +
      '"idle in transaction (aborted)" for good, one connection fewer in the pool each time, until none is left. ' +
      'Close a connection the transaction did not hand back; the pool opens a new one when one is needed.',
    find: beginBlock(['      throw error']),
    // Only while the connection is still this transaction's (`mine`, set by the next patch): once the server said the
    // transaction is over, the pool may already have handed it to the next sql.begin or reserve() (the hostile
    // review's first version of this patch killed the transaction queued behind one that failed in app code).
    replace: beginBlock(
      ['      connection && mine && connection.reserved === mine && connection.terminate()', '      throw error'],
      '      , mine = null',
    ),
  },
  {
    file: 'src/index.js',
    upstream: 'no upstream report found',
    why: "The patch above's mark: the function that holds the connection for this transaction.",
    find: '      c.reserved = () => queries.length\n',
    replace: '      c.reserved = mine = () => queries.length\n',
  },
  {
    file: 'src/queue.js',
    upstream: 'no upstream report found',
    why:
      "The pool's queues (open, busy, full...) are arrays that shift() empties only when it takes the last one out: " +
      'until then each shifted slot stays, as a hole, and remove() (every time a connection moves between queues, ' +
      'once per query) scans them all with indexOf. Under steady load the busy queue is never empty, so it grows by ' +
      "one slot per query: measured on GET /db under wrk, indexOf took 16% of the server's CPU after 3 s, and p99 was " +
      '10x plain Hono. Compact once half the array is holes, and search only the live part.',
    find: '        xs = []\n      } else {\n        xs[index - 1] = undefined\n',
    replace: [
      '        xs = []',
      '      } else if (index >= 64 && index * 2 >= xs.length) {',
      '        xs = xs.slice(index)',
      '        index = 0',
      '      } else {',
      '        xs[index - 1] = undefined',
      '',
    ].join('\n'),
  },
  {
    file: 'src/queue.js',
    upstream: 'no upstream report found',
    why: "The patch above's other half: remove() searches only the live part of the array, from the first slot not yet shifted.",
    find: '      const index = xs.indexOf(x)\n      return index === -1\n        ? null\n        : (xs.splice(index, 1), x)\n',
    replace:
      '      const at = xs.indexOf(x, index)\n      return at === -1\n        ? null\n        : (xs.splice(at, 1), x)\n',
  },
  {
    file: 'src/connection.js',
    upstream: 'porsager/postgres#1181',
    why:
      'The row counter is reset by CommandComplete only. A query that fails after sending some rows (a division by ' +
      'zero at the third row, a cancel that lands mid-result) never gets one, so the next query on that connection ' +
      'stores its first row at that index: `[undefined, undefined, {x: 1}]`, and `const [row] = ...` reads a hole (the ' +
      'hostile review saw 404 note_not_found for existing notes under client aborts). Reset it with the rest of the ' +
      "query's state at ReadyForQuery.",
    find: '    query = results = errorResponse = null\n    result = new Result()\n',
    replace: '    query = results = errorResponse = null\n    rows = 0\n    result = new Result()\n',
  },
];

export class PatchError extends Error {}

// postgres.js exports no ./package.json: walk up from its entry to the folder named for it.
const packageRoot = (() => {
  let dir = dirname(createRequire(import.meta.url).resolve('postgres'));
  while (basename(dir) !== 'postgres' && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

/** The patched source of `path` when it is a patched postgres.js file, else undefined. */
export function patchedSource(path: string, code: string): string | undefined {
  const patches = postgresPatches.filter((patch) => samePath(path, join(packageRoot, patch.file)));
  if (patches.length === 0) return undefined;
  let out = code;
  for (const patch of patches) {
    const at = out.indexOf(patch.find);
    if (at === -1 || out.indexOf(patch.find, at + 1) !== -1) {
      throw new PatchError(
        `postgres.js patch for ${patch.upstream} no longer applies to ${patch.file}: the code changed upstream. ` +
          'If the new release fixes the defect, drop the patch from src/build/driver-patches.ts in runway.',
      );
    }
    out = out.slice(0, at) + patch.replace + out.slice(at + patch.find.length);
  }
  return out;
}

function samePath(a: string, b: string): boolean {
  return a.replaceAll('\\', '/').split('?')[0] === b.replaceAll('\\', '/');
}

const patchedFiles = () => [...new Set(postgresPatches.map((patch) => join(packageRoot, patch.file)))];

/** For esbuild: every runway bundle (build, dev, the test fixtures). */
export const driverPatchesPlugin: Plugin = {
  name: 'postgres-driver-patches',
  setup(build) {
    const files = new Set(patchedFiles());
    build.onLoad({ filter: /[\\/]postgres[\\/]src[\\/][a-z]+\.js$/ }, (args) => {
      if (!files.has(args.path)) return undefined;
      const contents = patchedSource(args.path, readFileSync(args.path, 'utf8'));
      return contents === undefined ? undefined : { contents, loader: 'js' };
    });
  },
};

/** For vitest (a vite plugin): postgres must be inlined (`server.deps.inline`) for it to apply. */
export const driverPatchesVitePlugin = {
  name: 'postgres-driver-patches',
  transform(code: string, id: string) {
    const contents = patchedSource(id, code);
    return contents === undefined ? undefined : { code: contents, map: null };
  },
};
