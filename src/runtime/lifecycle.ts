import { DrainTimeoutError } from './abort-reasons.js';
import type { Health } from './health.js';
import { errorFields, type Logger } from './logger.js';

/**
 * One AbortController owns the process lifecycle. `shutdown()` aborts it and
 * runs the drain in a fixed order:
 *   1. readiness 503 (liveness stays 200)
 *   2. keep serving for `shutdownDelayMs`, so the load balancer sees step 1
 *   3. stop accepting; idle keep-alive sockets close; in-flight responses carry `Connection: close`
 *   4. wait up to `gracefulTimeoutMs` for in-flight requests
 *   5. at that deadline, abort the per-request signals, then destroy what is left
 *   6. cleanup hooks (database pool, ...) under `cleanupTimeoutMs`
 *   7. exit 0, or 1 after a forced close, a failed cleanup or a fatal error
 * The order and the single signal follow lightship and close-with-grace; the
 * exit function is injected so tests can drive the sequence in-process.
 */

export interface Drainable {
  /** Step 3. */
  stopAccepting(): void;
  /** Step 4: resolves true when nothing is in flight, false at the deadline. */
  waitForInFlight(timeoutMs: number): Promise<boolean>;
  /** Step 5. Resolves to how many requests were still in flight, and how many of them were streams (their answer had begun). */
  forceClose(reason: Error): Promise<{ requests: number; streams: number }>;
}

export type CleanupHook = (signal: AbortSignal) => Promise<unknown> | unknown;

export type ShutdownCause = { signal: NodeJS.Signals } | { error: unknown };

export interface Lifecycle {
  /** Aborted when shutdown begins. */
  readonly signal: AbortSignal;
  /** Aborted when the listener must stop accepting (after the delay). */
  readonly stopAcceptingSignal: AbortSignal;
  addDrainable(drainable: Drainable): void;
  onCleanup(name: string, hook: CleanupHook): void;
  shutdown(cause: ShutdownCause): Promise<void>;
}

export interface LifecycleOptions {
  log: Logger;
  health: Health;
  shutdownDelayMs: number;
  gracefulTimeoutMs: number;
  cleanupTimeoutMs: number;
  /** `now`: the exit may not wait for anything (a second signal, an overrun budget). */
  exit: (code: number, now?: boolean) => void;
}

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };

export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const { log, health, shutdownDelayMs, gracefulTimeoutMs, cleanupTimeoutMs, exit } = options;
  const shutdownController = new AbortController();
  const acceptController = new AbortController();
  const drainables: Drainable[] = [];
  const hooks: { name: string; hook: CleanupHook }[] = [];
  let exitCode = 0;
  let running: Promise<void> | undefined;

  const drain = async (cause: ShutdownCause) => {
    const startedAt = performance.now();
    health.markDraining();
    log.info('shutdown started', {
      cause: 'signal' in cause ? cause.signal : 'fatal error',
      shutdownDelayMs,
      gracefulTimeoutMs,
      cleanupTimeoutMs,
    });
    // Safety net: every step below is bounded, but a process that is still
    // here after all the bounds together must not wait for SIGKILL.
    const budgetMs = shutdownDelayMs + gracefulTimeoutMs + cleanupTimeoutMs + 1_000;
    const overrun = setTimeout(() => {
      log.error('shutdown overran its budget, exiting', { budgetMs });
      exit(1, true);
    }, budgetMs);
    overrun.unref();

    if (shutdownDelayMs > 0) await delay(shutdownDelayMs);
    acceptController.abort();
    for (const drainable of drainables) drainable.stopAccepting();

    const drained = await Promise.all(drainables.map((d) => d.waitForInFlight(gracefulTimeoutMs)));
    if (drained.includes(false)) {
      const reason = new DrainTimeoutError(gracefulTimeoutMs);
      const counts = await Promise.all(drainables.map((d) => d.forceClose(reason)));
      const left = counts.reduce((sum, n) => sum + n.requests, 0);
      const streams = counts.reduce((sum, n) => sum + n.streams, 0);
      log.error('drain deadline reached, closed in-flight requests', { inFlight: left, streams, gracefulTimeoutMs });
      exitCode = 1;
    }

    if (!(await runCleanup())) exitCode = 1;
    log.info('shutdown complete', { drainMs: Math.round(performance.now() - startedAt), exitCode });
    // The drain is over; the exit may still wait for a slow log reader (main.ts), which is not an overrun.
    clearTimeout(overrun);
    exit(exitCode);
  };

  const runCleanup = async (): Promise<boolean> => {
    if (hooks.length === 0) return true;
    // Not AbortSignal.timeout: its timer is unref'd, and a hook that waits on
    // nothing would let the loop empty and the process exit 0 mid-cleanup.
    const controller = new AbortController();
    const signal = controller.signal;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(new Error(`cleanup timeout of ${cleanupTimeoutMs} ms`));
        resolve('timeout');
      }, cleanupTimeoutMs);
    });
    try {
      return await runHooks(signal, timedOut);
    } finally {
      clearTimeout(timer);
    }
  };

  const runHooks = async (signal: AbortSignal, timedOut: Promise<'timeout'>): Promise<boolean> => {
    let ok = true;
    // Reverse order: what started last depends on what started first.
    for (const { name, hook } of [...hooks].reverse()) {
      try {
        const outcome = await Promise.race([Promise.resolve().then(() => hook(signal)), timedOut]);
        if (outcome === 'timeout') {
          log.error('cleanup timed out', { hook: name, cleanupTimeoutMs });
          return false;
        }
      } catch (error) {
        log.error('cleanup failed', { hook: name, ...errorFields(error) });
        ok = false;
      }
    }
    return ok;
  };

  return {
    signal: shutdownController.signal,
    stopAcceptingSignal: acceptController.signal,
    addDrainable(drainable) {
      drainables.push(drainable);
    },
    onCleanup(name, hook) {
      hooks.push({ name, hook });
    },
    shutdown(cause) {
      if ('error' in cause) {
        exitCode = 1;
        log.error('fatal error', errorFields(cause.error));
      }
      if (running) {
        if ('signal' in cause) {
          // A second signal means the operator wants out now (close-with-grace does the same).
          log.warn('second signal during shutdown, exiting now', { signal: cause.signal });
          exit(128 + (signalNumbers[cause.signal] ?? 0), true);
        }
        return running;
      }
      shutdownController.abort('error' in cause ? cause.error : new Error(`received ${cause.signal}`));
      running = drain(cause).catch((error) => {
        log.error('shutdown failed', errorFields(error));
        exit(1);
      });
      return running;
    },
  };
}

function delay(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
