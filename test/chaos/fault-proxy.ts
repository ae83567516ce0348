import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of Postgres that injects network faults
 * on command. New connections and the connections already open are set
 * apart, because the faults differ: a host that went away refuses new
 * connections and resets the open ones; a partition lets nothing through
 * either way.
 *   new connections: `pass`, `refuse` (the listener closes: the kernel
 *   answers ECONNREFUSED), `blackhole` (accepted, nothing forwarded: a
 *   connect that hangs), `reset` (accepted, then RST at once)
 *   open connections: `pass`, `blackhole` (nothing more is forwarded either
 *   way; what arrives is held, as a network holds what TCP retransmits, and
 *   flows again on `pass`), `reset` (RST to both ends, once)
 *   latency: every chunk, either way, is delayed this long (order kept).
 * `onClientData` sees each chunk the app sends before it is forwarded, so a
 * test can strike at the moment a query goes out.
 */

export type NewConnections = 'pass' | 'refuse' | 'blackhole' | 'reset';
export type OpenConnections = 'pass' | 'blackhole' | 'reset';

export interface Fault {
  fresh?: NewConnections;
  open?: OpenConnections;
  latencyMs?: number;
}

export interface FaultProxy {
  readonly port: number;
  /** Sets the fault; what is not named goes back to `pass` (and latency to 0). */
  set(fault: Fault): Promise<void>;
  heal(): Promise<void>;
  /** Resets every open connection now (RST to both ends). */
  resetOpen(): void;
  /** Called with each chunk from the app, before it is forwarded or held; returns an unsubscribe. */
  onClientData(listener: (chunk: Buffer, link: Link) => void): () => void;
  readonly openConnections: number;
  readonly accepted: number;
  close(): Promise<void>;
}

export interface Link {
  /** RST to both ends. */
  reset(): void;
}

interface Direction {
  target: Socket | undefined;
  queue: { chunk: Buffer; dueAt: number }[];
  timer: NodeJS.Timeout | undefined;
  /** The other end went away: once what is queued is delivered, end or reset the target. */
  closing: 'end' | 'reset' | undefined;
}

interface Pair extends Link {
  down: Socket;
  up: Socket | undefined;
  held: boolean;
  toUp: Direction;
  toDown: Direction;
}

type Teardown = (fn: () => Promise<void>) => void;

export async function startFaultProxy(targetPort: number, teardown: Teardown): Promise<FaultProxy> {
  const pairs = new Set<Pair>();
  const listeners = new Set<(chunk: Buffer, link: Link) => void>();
  let fresh: NewConnections = 'pass';
  let latencyMs = 0;
  let accepted = 0;
  let closed = false;

  const pump = (pair: Pair, direction: Direction) => {
    clearTimeout(direction.timer);
    direction.timer = undefined;
    if (pair.held || !direction.target) return;
    const now = Date.now();
    while (direction.queue.length > 0) {
      const next = direction.queue[0] as { chunk: Buffer; dueAt: number };
      if (next.dueAt > now) {
        direction.timer = setTimeout(() => pump(pair, direction), next.dueAt - now);
        return;
      }
      direction.queue.shift();
      if (!direction.target.destroyed) direction.target.write(next.chunk);
    }
    if (direction.closing === 'reset') resetPair(pair);
    else if (direction.closing === 'end') {
      drop(pair);
      if (!direction.target.destroyed) direction.target.end();
    }
  };

  // A held connection hears nothing of its other end either, not even that it went away.
  const closeToward = (pair: Pair, direction: Direction, how: 'end' | 'reset') => {
    direction.closing ??= how;
    // A connect still black-holed never reached the database: nothing to tell it.
    if (!direction.target) return drop(pair);
    pump(pair, direction);
  };

  const enqueue = (pair: Pair, direction: Direction, chunk: Buffer) => {
    const last = direction.queue.at(-1)?.dueAt ?? 0;
    direction.queue.push({ chunk, dueAt: Math.max(Date.now() + latencyMs, last) });
    pump(pair, direction);
  };

  const drop = (pair: Pair) => {
    if (!pairs.delete(pair)) return;
    clearTimeout(pair.toUp.timer);
    clearTimeout(pair.toDown.timer);
  };

  const resetPair = (pair: Pair) => {
    drop(pair);
    if (!pair.down.destroyed) pair.down.resetAndDestroy();
    if (pair.up && !pair.up.destroyed) pair.up.resetAndDestroy();
  };

  const connectUp = (pair: Pair) => {
    const up = connect({ host: '127.0.0.1', port: targetPort });
    pair.up = up;
    pair.toUp.target = up;
    up.on('data', (chunk: Buffer) => enqueue(pair, pair.toDown, chunk));
    up.once('connect', () => pump(pair, pair.toUp));
    // The database went away under us: the app sees its connection end the same way.
    up.on('error', () => closeToward(pair, pair.toDown, 'reset'));
    up.once('close', () => closeToward(pair, pair.toDown, 'end'));
  };

  const onConnection = (down: Socket) => {
    accepted++;
    if (fresh === 'reset') return void down.resetAndDestroy();
    const pair: Pair = {
      down,
      up: undefined,
      held: fresh === 'blackhole',
      toUp: { target: undefined, queue: [], timer: undefined, closing: undefined },
      toDown: { target: down, queue: [], timer: undefined, closing: undefined },
      reset: () => resetPair(pair),
    };
    pairs.add(pair);
    down.on('data', (chunk: Buffer) => {
      for (const listener of listeners) listener(chunk, pair);
      if (pairs.has(pair)) enqueue(pair, pair.toUp, chunk);
    });
    down.on('error', () => closeToward(pair, pair.toUp, 'reset'));
    down.once('close', () => closeToward(pair, pair.toUp, 'end'));
    // A black-holed connect never reaches the database until the fault heals.
    if (!pair.held) connectUp(pair);
  };

  // A new listener each time the port reopens: close() stops accepting at
  // once, but its callback waits for every open connection to end.
  let server: Server | undefined;
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const next = createServer(onConnection);
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        next.off('error', reject);
        server = next;
        resolve((next.address() as { port: number }).port);
      });
    });
  const stopListening = () => {
    server?.close();
    server = undefined;
  };
  const port = await listen(0);

  const proxy: FaultProxy = {
    port,
    async set(fault) {
      fresh = fault.fresh ?? 'pass';
      latencyMs = fault.latencyMs ?? 0;
      const open = fault.open ?? 'pass';
      if (fresh === 'refuse') stopListening();
      else if (!server && !closed) await listen(port);
      for (const pair of [...pairs]) {
        if (open === 'reset') resetPair(pair);
        else if (open === 'blackhole') pair.held = true;
        else if (pair.held) {
          pair.held = false;
          if (!pair.up) connectUp(pair);
          pump(pair, pair.toUp);
          pump(pair, pair.toDown);
        }
      }
    },
    heal: () => proxy.set({}),
    resetOpen() {
      for (const pair of [...pairs]) resetPair(pair);
    },
    onClientData(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get openConnections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    async close() {
      closed = true;
      listeners.clear();
      for (const pair of [...pairs]) {
        drop(pair);
        pair.down.destroy();
        pair.up?.destroy();
      }
      stopListening();
    },
  };
  teardown(() => proxy.close());
  return proxy;
}
