import type { Logger } from './logger.js';

/**
 * Load shedding: refuse new work, fast and honestly, before the process is
 * too busy to serve what it already accepted.
 *   - a cap on requests in flight (`maxInFlight`, 0 = none);
 *   - event-loop delay: while the loop runs more than `maxEventLoopDelayMs`
 *     late, new requests are refused and readiness reports not-ready, so the
 *     load balancer moves traffic elsewhere. Liveness stays 200: restarting
 *     an overloaded process only adds a cold start to the overload.
 * Refusals are counted, and logged at most once a second, so the logs do not
 * become a second overload.
 *
 * The loop delay is watched two ways:
 *   - `perf_hooks.monitorEventLoopDelay` (a libuv timer, no JS on the hot
 *     path), read every `SAMPLE_MS`: it drives readiness, and while it is
 *     over the bound every new request is shed. A window in which no request
 *     arrived does not count: a process that the platform froze while idle
 *     (Cloud Run without always-on CPU) sees huge delays that are not load.
 *   - per loop turn: requests read in one turn of the loop are handled one
 *     after the other, so a request reached `maxEventLoopDelayMs` after the
 *     turn began has waited that long already, in the socket buffer, behind
 *     the others. It is shed at once, and the turn ends sooner. The sampled
 *     view alone reacts a sample late and then sheds everything; measured in
 *     `npm run bench` under a closed-loop flood of 256 connections, it left
 *     the p99 of accepted requests in seconds (turns of 256 requests of
 *     work, and new connections starved of accept()).
 */

export type ShedReason = 'max_inflight' | 'event_loop_delay' | 'rate_limit' | 'body_memory' | 'websockets';

export interface LoadShedderOptions {
  maxInFlight: number;
  maxEventLoopDelayMs: number;
  log: Logger;
}

export interface LoadShedder {
  /** Why a new request must be refused now, or undefined to admit it. */
  check(inFlight: number): ShedReason | undefined;
  /** Counts a refusal and logs a sampled summary. */
  count(reason: ShedReason): void;
  /** True while the event-loop delay is over its bound. */
  readonly overloaded: boolean;
  /** Starts watching the loop (after startup, whose module loading blocks it legitimately). */
  start(): void;
  stop(): void;
}

const SAMPLE_MS = 100;
const RESOLUTION_MS = 10;
const LOG_EVERY_MS = 1_000;

interface DelayMonitor {
  /** The longest delay since the last read, in ms; resets it. */
  takeMaxMs(): number;
  stop(): void;
}

export function createLoadShedder({ maxInFlight, maxEventLoopDelayMs, log }: LoadShedderOptions): LoadShedder {
  const totals: Record<ShedReason, number> = {
    max_inflight: 0,
    event_loop_delay: 0,
    rate_limit: 0,
    body_memory: 0,
    websockets: 0,
  };
  const sinceLog: Record<ShedReason, number> = {
    max_inflight: 0,
    event_loop_delay: 0,
    rate_limit: 0,
    body_memory: 0,
    websockets: 0,
  };
  let lastLogAt = 0;
  let overloaded = false;
  let delayMs = 0;
  let arrivals = 0;
  let monitor: DelayMonitor | undefined;
  // The turn of the loop in which the last request arrived: its start, and
  // whether it is still running (a setImmediate, run after the turn's I/O, ends it).
  let turnStart = 0;
  let inTurn = false;
  const endTurn = () => {
    inTurn = false;
  };
  let sampler: ReturnType<typeof setInterval> | undefined;

  const sample = () => {
    if (!monitor) return;
    delayMs = monitor.takeMaxMs();
    const busyWindow = arrivals > 0;
    arrivals = 0;
    const over = delayMs > maxEventLoopDelayMs;
    if (over && !busyWindow) return;
    if (over !== overloaded) {
      overloaded = over;
      log.warn(over ? 'event loop overloaded, shedding new requests' : 'event loop recovered', {
        eventLoopDelayMs: Math.round(delayMs),
        maxEventLoopDelayMs,
      });
    }
  };

  return {
    check(inFlight) {
      arrivals++;
      if (maxInFlight > 0 && inFlight >= maxInFlight) return 'max_inflight';
      if (!monitor) return undefined;
      if (overloaded) return 'event_loop_delay';
      const now = performance.now();
      if (!inTurn) {
        inTurn = true;
        turnStart = now;
        setImmediate(endTurn);
      } else if (now - turnStart > maxEventLoopDelayMs) {
        return 'event_loop_delay';
      }
      return undefined;
    },
    count(reason) {
      totals[reason]++;
      sinceLog[reason]++;
      const now = Date.now();
      if (now - lastLogAt < LOG_EVERY_MS) return;
      lastLogAt = now;
      log.warn('requests refused', {
        refused: { ...sinceLog },
        totals: { ...totals },
        eventLoopDelayMs: Math.round(delayMs),
      });
      sinceLog.max_inflight = 0;
      sinceLog.event_loop_delay = 0;
      sinceLog.rate_limit = 0;
      sinceLog.body_memory = 0;
    },
    get overloaded() {
      return overloaded;
    },
    start() {
      if (maxEventLoopDelayMs <= 0 || monitor) return;
      monitor = createDelayMonitor();
      sampler = setInterval(sample, SAMPLE_MS);
      (sampler as { unref?: () => void }).unref?.();
    },
    stop() {
      clearInterval(sampler);
      monitor?.stop();
      monitor = undefined;
    },
  };
}

function createDelayMonitor(): DelayMonitor {
  const perfHooks = process.getBuiltinModule?.('node:perf_hooks') as typeof import('node:perf_hooks') | undefined;
  try {
    const histogram = perfHooks?.monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    if (histogram) {
      histogram.enable();
      return {
        takeMaxMs() {
          // The histogram records the time between its timer's ticks, the
          // resolution included; the delay is what exceeds it. (Empty: max 0.)
          const max = Math.max(0, histogram.max / 1e6 - RESOLUTION_MS);
          histogram.reset();
          return max;
        },
        stop: () => histogram.disable(),
      };
    }
  } catch {
    // Runtimes whose node:perf_hooks lacks it (Bun) take the timer below.
  }
  return createTimerMonitor();
}

/** The same measure from JS: how late a `RESOLUTION_MS` timer fires. */
function createTimerMonitor(): DelayMonitor {
  let max = 0;
  let expected = performance.now() + RESOLUTION_MS;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - expected);
    expected = now + RESOLUTION_MS;
  }, RESOLUTION_MS);
  (timer as { unref?: () => void }).unref?.();
  return {
    takeMaxMs() {
      const value = max;
      max = 0;
      return value;
    },
    stop: () => clearInterval(timer),
  };
}
