/**
 * The deadlines of a request in flight, one design on every edge:
 *   - the handler deadline (HANDLER_TIMEOUT_MS) bounds the app's work until it
 *     answers: when it passes, the request's signal aborts and the client gets
 *     503 `handler_timeout` (or `not_started`, when the app is still loading).
 *     A streamed body is not the handler's work: the deadline ends when the
 *     Response is there;
 *   - the write timeout (WRITE_TIMEOUT_MS with WRITE_MIN_RATE_BPS, node:http
 *     only: Bun and Deno give a server no socket) cuts a client that stops
 *     taking what it is sent, judged by progress, never by the length of the
 *     response (write-progress.ts), so a stream that flows is never cut.
 * Both are checked by one sweep over the requests in flight, every tenth of
 * the shorter deadline (50 ms to 1 s), not by a timer and a promise race per
 * request: a timer per request is measurable on the hot path, and a deadline
 * met a tenth of its length late is still within its bound. `sweep(now)`
 * takes the time, so the design is tested with a clock of the test's own.
 */

export interface Deadlined {
  startedAt: number;
  /** The route's own settings (route-settings.ts): its handler deadline over the server's. */
  limits?: { readonly handlerTimeoutMs?: number | undefined } | undefined;
  /** Set while a handler (or the wait for the app) runs: what answers at the handler deadline. */
  onDeadline: (() => void) | undefined;
}

export interface DeadlineOptions<T extends Deadlined> {
  items: Iterable<T>;
  handlerTimeoutMs: number;
  /** Called once per request, after the request's onDeadline was taken off it. */
  onHandlerDeadline(item: T): void;
  /** Sets the sweep's pace too: how often progress is looked at. */
  writeTimeoutMs?: number | undefined;
  /** Called for every request on every sweep, with the sweep's time: the write timeout's check. */
  checkWrite?: (item: T, now: number) => void;
}

/** How often a sweep for these deadlines runs. */
export function sweepIntervalMs(...timeoutsMs: number[]): number {
  return Math.min(1_000, Math.max(50, Math.floor(Math.min(...timeoutsMs) / 10)));
}

export function sweepDeadlines<T extends Deadlined>(options: DeadlineOptions<T>, now: number): void {
  const { handlerTimeoutMs, checkWrite } = options;
  for (const item of options.items) {
    const age = now - item.startedAt;
    const answer = item.onDeadline;
    if (answer && age >= (item.limits?.handlerTimeoutMs ?? handlerTimeoutMs)) {
      item.onDeadline = undefined;
      options.onHandlerDeadline(item);
      answer();
    }
    checkWrite?.(item, now);
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
