/**
 * The two deadlines of a request in flight, one design on every edge:
 *   - the handler deadline (HANDLER_TIMEOUT_MS) bounds the app's work: when it
 *     passes, the request's signal aborts and the client gets 503
 *     `handler_timeout` (or `not_started`, when the app is still loading);
 *   - the write deadline (WRITE_TIMEOUT_MS, node:http only: Bun and Deno give
 *     a server no socket) bounds the whole exchange: past it the connection
 *     is destroyed, which frees what was buffered for a client that stopped
 *     reading.
 * Both are checked by one sweep over the requests in flight, every tenth of
 * the shorter deadline (50 ms to 1 s), not by a timer and a promise race per
 * request: a timer per request is measurable on the hot path, and a deadline
 * met a tenth of its length late is still within its bound. `sweep(now)`
 * takes the time, so the design is tested with a clock of the test's own.
 */

export interface Deadlined {
  startedAt: number;
  /** Set while a handler (or the wait for the app) runs: what answers at the handler deadline. */
  onDeadline: (() => void) | undefined;
}

export interface DeadlineOptions<T extends Deadlined> {
  items: Iterable<T>;
  handlerTimeoutMs: number;
  /** Called once per request, after the request's onDeadline was taken off it. */
  onHandlerDeadline(item: T): void;
  writeTimeoutMs?: number | undefined;
  onWriteDeadline?: (item: T) => void;
}

/** How often a sweep for these deadlines runs. */
export function sweepIntervalMs(...timeoutsMs: number[]): number {
  return Math.min(1_000, Math.max(50, Math.floor(Math.min(...timeoutsMs) / 10)));
}

export function sweepDeadlines<T extends Deadlined>(options: DeadlineOptions<T>, now: number): void {
  const { handlerTimeoutMs, writeTimeoutMs } = options;
  for (const item of options.items) {
    const age = now - item.startedAt;
    const answer = item.onDeadline;
    if (answer && age >= handlerTimeoutMs) {
      item.onDeadline = undefined;
      options.onHandlerDeadline(item);
      answer();
    }
    if (writeTimeoutMs !== undefined && age >= writeTimeoutMs) options.onWriteDeadline?.(item);
  }
}

/** Sweeps on an unref'd interval until `stop()`. */
export function startDeadlines<T extends Deadlined>(options: DeadlineOptions<T>): { stop(): void } {
  const timeouts = [
    options.handlerTimeoutMs,
    ...(options.writeTimeoutMs === undefined ? [] : [options.writeTimeoutMs]),
  ];
  const timer = setInterval(() => sweepDeadlines(options, Date.now()), sweepIntervalMs(...timeouts));
  // Deno's timer ids have no unref; there stop() clears the interval.
  (timer as { unref?: () => void }).unref?.();
  return { stop: () => clearInterval(timer) };
}
