import net from 'node:net';
import type postgres from 'postgres';
import { onTestFinished } from 'vitest';

/**
 * Tools for test/db/driver-patches.test.ts: what the process saw (uncaught
 * exceptions, unhandled rejections), how a driver promise ended within an
 * upper bound, and TCP servers that fail the way networks do (a reset, a
 * close during startup). Each registers its own teardown.
 */

/** Every uncaughtException and unhandledRejection in this process until the test ends. */
export function processFaults(): string[] {
  const seen: string[] = [];
  const onException = (error: unknown) => seen.push(`uncaughtException: ${String(error)}`);
  const onRejection = (reason: unknown) => seen.push(`unhandledRejection: ${String(reason)}`);
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  onTestFinished(() => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  });
  return seen;
}

/**
 * Two turns of the event loop. The driver defers its writes to a setImmediate
 * and Node reports an unhandled rejection once the microtasks are drained, so
 * after two check phases both have happened for whatever failed before.
 */
export async function loopTurns(): Promise<void> {
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
}

export type Outcome =
  | { status: 'resolved'; value: unknown }
  | { status: 'rejected'; code: unknown; message: string }
  | { status: 'pending' };

/**
 * How `promise` ended, or `pending` if it had not after `boundMs`: an upper
 * bound for "settles", generous on purpose, never a target.
 */
export function outcomeWithin(promise: PromiseLike<unknown>, boundMs = 10_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ status: 'pending' }), boundMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve({ status: 'resolved', value });
      },
      (error: unknown) => {
        clearTimeout(timer);
        const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
        resolve({ status: 'rejected', code, message: String(message) });
      },
    );
  });
}

/** Polls pg_stat_activity (no event tells it) until backend `pid` is running a statement. */
export async function untilActive(admin: postgres.Sql, pid: number): Promise<void> {
  for (let tries = 0; tries < 250; tries++) {
    const [row] = await admin`select state from pg_stat_activity where pid = ${pid}`;
    if (row?.state === 'active') return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`backend ${pid} never became active`);
}

/** Polls pg_stat_activity (no event tells it) until a backend runs a statement containing `marker`; its pid. */
export async function untilRunning(admin: postgres.Sql, marker: string): Promise<number> {
  for (let tries = 0; tries < 250; tries++) {
    const [row] = await admin<{ pid: number }[]>`
      select pid from pg_stat_activity
      where state = 'active' and pid <> pg_backend_pid() and strpos(query, ${marker}) > 0`;
    if (row) return row.pid;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no backend ran a statement with ${marker}`);
}

/** pg_terminate_backend, returning once the backend has exited (its timeout argument, PostgreSQL 14+). */
export async function terminate(admin: postgres.Sql, pid: number): Promise<void> {
  const [row] = await admin`select pg_terminate_backend(${pid}, 10000) as done`;
  if (row?.done !== true) throw new Error(`backend ${pid} did not exit`);
}

export interface Proxy {
  port: number;
  /** Resets (RST) every client connection: the driver reads ECONNRESET. */
  reset(): void;
  /** Refuses new connections from now on; those open stay. */
  stopAccepting(): void;
}

/** A TCP proxy to `targetPort` that fails the way a dying server or middlebox does. */
export async function proxyTo(
  targetPort: number,
  { rewrite }: { rewrite?: (chunk: Buffer) => Buffer } = {},
): Promise<Proxy> {
  const clients = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    clients.add(client);
    if (rewrite) client.on('data', (chunk: Buffer) => upstream.write(rewrite(chunk)));
    else client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      clients.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  const port = await listen(server, clients);
  return {
    port,
    reset() {
      for (const client of clients) client.resetAndDestroy();
    },
    stopAccepting() {
      // Closes the listening socket at once; the callback would wait for the open connections.
      server.close();
    },
  };
}

/** A CancelRequest's first eight bytes: its length (16) and its code (80877102). */
const CANCEL_REQUEST = Buffer.from([0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e]);

export interface CancelHoldingProxy {
  port: number;
  /** Resolves when a CancelRequest has reached the proxy (it is held there). */
  cancelArrived(): Promise<void>;
  /** Lets every held CancelRequest through to the server, and those after it. */
  release(): void;
}

/**
 * A TCP proxy to `targetPort` that holds every CancelRequest until `release()`:
 * a cancel that is slow on its way (its own connection, a congested network),
 * while the connections that carry queries flow as usual.
 */
export async function cancelHoldingProxy(targetPort: number): Promise<CancelHoldingProxy> {
  const open = new Set<net.Socket>();
  const held: (() => void)[] = [];
  let released = false;
  let arrived: () => void = () => {};
  const arrival = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  const server = net.createServer((client) => {
    open.add(client);
    client.on('error', () => client.destroy()).on('close', () => open.delete(client));
    client.once('data', (first: Buffer) => {
      client.pause();
      const forward = () => {
        const upstream = net.connect(targetPort, '127.0.0.1');
        open.add(upstream);
        upstream
          .on('error', () => client.destroy())
          .on('close', () => {
            open.delete(upstream);
            client.destroy();
          });
        client.on('close', () => upstream.destroy());
        upstream.write(first);
        client.pipe(upstream).pipe(client);
        client.resume();
      };
      if (released || !first.subarray(0, 8).equals(CANCEL_REQUEST)) return forward();
      held.push(forward);
      arrived();
    });
  });
  const port = await listen(server, open);
  return {
    port,
    cancelArrived: () => arrival,
    release() {
      released = true;
      for (const forward of held.splice(0)) forward();
    },
  };
}

/**
 * A TCP server that accepts every connection and closes it at once, counting
 * them: a clean close (FIN) by default, like a port forward or proxy whose
 * database is not up; a reset (RST) with `reset`.
 */
export async function closingServer({ reset = false } = {}): Promise<{ port: number; accepted(): number }> {
  let accepted = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    open.add(socket);
    socket.on('error', () => {}).on('close', () => open.delete(socket));
    if (reset) return socket.resetAndDestroy();
    // Read on, or the client's FIN in reply is never seen and the socket stays open.
    socket.resume().end();
  });
  const port = await listen(server, open);
  return { port, accepted: () => accepted };
}

async function listen(server: net.Server, open: Set<net.Socket>): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  onTestFinished(async () => {
    // Connections left open would hold close() forever.
    for (const socket of open) socket.destroy();
    // Called again after stopAccepting(): the callback then gets ERR_SERVER_NOT_RUNNING, which is fine.
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as net.AddressInfo).port;
}
