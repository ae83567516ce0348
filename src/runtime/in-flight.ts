/**
 * The requests a server has in flight, and the two drain steps both server
 * edges (node-server.ts, web-server.ts) take over them: wait until none is
 * left, or abort every one and give the handlers a moment to answer. The
 * node edge keeps its open connections in one too, to wait for them.
 */

// After the drain deadline aborts the request signals, a handler that reacts
// at once (a cancelled query turned into a 503) gets this long to answer.
const ABORT_GRACE_MS = 100;

/**
 * What is in flight, in the order it arrived; iterating while items come and go is safe, as with a
 * Set. Iterate with `for...of` or a spread, which always finish or close the iterator: one stepped by
 * hand and dropped midway would hold off compaction for good.
 */
export interface InFlightItems<T> extends Iterable<T> {
  readonly size: number;
}

export interface InFlight<T> {
  readonly items: InFlightItems<T>;
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

// Holes past which add() compacts the slots (and only when they outnumber the items).
const MIN_HOLES_TO_COMPACT = 32;

/**
 * Not a Set: V8 rehashes a Set's table as it grows and again as it shrinks, so a Set that swings
 * between empty and a few dozen requests on every batch of answers allocated a new table each
 * swing. Held by the long-lived Set, each table outlived two scavenges and was promoted, and half
 * the old-space garbage of a `GET /json` under load was those tables (a sampling heap profile of
 * what survived the minor GCs; docs/benchmarks.md). So: slots in an array that keeps its length,
 * each item holding its own slot number; a removal leaves a hole, and add() compacts once the holes
 * outnumber the items.
 */
export function createInFlight<T extends object>(): InFlight<T> {
  // Its own key per collection: one object may be in several (a request and its socket's list).
  const slotKey = Symbol('runway.inFlightSlot');
  type Slotted = T & { [slotKey]?: number | undefined };
  const slots: (T | undefined)[] = [];
  // Slots in use, holes included; slots past it are undefined.
  let end = 0;
  let size = 0;
  // Iterations under way: compaction waits for them, so an iteration never misses an item.
  let iterating = 0;
  let waiter: (() => void) | undefined;

  const compact = () => {
    let kept = 0;
    for (let at = 0; at < end; at++) {
      const item = slots[at] as Slotted | undefined;
      if (item === undefined) continue;
      if (at !== kept) {
        slots[kept] = item;
        slots[at] = undefined;
        item[slotKey] = kept;
      }
      kept++;
    }
    end = kept;
  };

  const items: InFlightItems<T> = {
    get size() {
      return size;
    },
    *[Symbol.iterator]() {
      iterating++;
      try {
        // `end` is read on every step: what is added meanwhile is visited too, as a Set's iterator does.
        for (let at = 0; at < end; at++) {
          const item = slots[at];
          if (item !== undefined) yield item;
        }
      } finally {
        iterating--;
      }
    },
  };

  const wait = (timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      if (size === 0) return resolve(true);
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
      const slotted = item as Slotted;
      if (slotted[slotKey] !== undefined) return;
      const holes = end - size;
      if (iterating === 0 && holes >= MIN_HOLES_TO_COMPACT && holes > size) compact();
      slots[end] = item;
      slotted[slotKey] = end;
      end++;
      size++;
    },
    remove(item) {
      const slotted = item as Slotted;
      const at = slotted[slotKey];
      if (at === undefined) return;
      slots[at] = undefined;
      slotted[slotKey] = undefined;
      size--;
      if (size === 0) {
        if (iterating === 0) end = 0;
        waiter?.();
      }
    },
    wait,
    async abortAll(abort) {
      const left = size;
      for (const item of items) abort(item);
      await wait(ABORT_GRACE_MS);
      return left;
    },
  };
}
