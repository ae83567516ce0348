/**
 * The requests a server has in flight, and the two drain steps both server
 * edges (node-server.ts, web-server.ts) take over them: wait until none is
 * left, or abort every one and give the handlers a moment to answer. The
 * node edge keeps its open connections in one too, to wait for them.
 */

// After the drain deadline aborts the request signals, a handler that reacts
// at once (a cancelled query turned into a 503) gets this long to answer.
const ABORT_GRACE_MS = 100;

export interface InFlight<T> {
  readonly items: ReadonlySet<T>;
  add(item: T): void;
  /** Removes one; once none is left, a pending `wait` resolves. */
  remove(item: T): void;
  /** Resolves true when nothing is in flight, false at the deadline. */
  wait(timeoutMs: number): Promise<boolean>;
  /** Aborts every request, waits ABORT_GRACE_MS for them, resolves to how many there were. */
  abortAll(abort: (item: T) => void): Promise<number>;
}

/**
 * True once `done` has settled within `timeoutMs`, false at the deadline; true at once when there is
 * nothing to wait for. The Bun and Deno edges wait so for their server's own graceful stop.
 */
export async function settlesWithin(done: Promise<unknown> | undefined, timeoutMs: number): Promise<boolean> {
  if (!done) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([
    done.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs));
    }),
  ]);
  clearTimeout(timer);
  return settled;
}

export function createInFlight<T>(): InFlight<T> {
  const items = new Set<T>();
  let waiter: (() => void) | undefined;

  const wait = (timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      if (items.size === 0) return resolve(true);
      const timer = setTimeout(() => {
        waiter = undefined;
        resolve(false);
      }, timeoutMs);
      waiter = () => {
        clearTimeout(timer);
        waiter = undefined;
        resolve(true);
      };
    });

  return {
    items,
    add(item) {
      items.add(item);
    },
    remove(item) {
      items.delete(item);
      if (items.size === 0) waiter?.();
    },
    wait,
    async abortAll(abort) {
      const left = items.size;
      for (const item of items) abort(item);
      await wait(ABORT_GRACE_MS);
      return left;
    },
  };
}
