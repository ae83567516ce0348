import type { Logger } from 'runway';
import { errorFields } from 'runway/hono';
import type { Sql } from 'runway/postgres';

/**
 * A table kept bounded by a sweep that deletes what has expired, in short
 * batches: the Idempotency-Key rows (idempotency-sweep.ts) and the change
 * feed's history (feed-sweep.ts). Expiry itself never depends on it: a
 * sweep only reclaims space, so it can be slow, late or failing without any
 * request answering differently.
 *
 * Each batch is one short autocommitted statement of at most `batchSize`
 * rows that passes over rows someone holds (`skip locked`) instead of
 * waiting for them: every instance runs one, and they stay off each other's
 * rows. A run stops after `maxBatches`, so a backlog is worked off over
 * several runs rather than in one long one. The timer is unref'd and stops
 * when `signal` (shutdown) aborts, which also cancels a batch in flight.
 * Failures are logged, at most once per `logEveryMs`, and never thrown.
 */
export interface SweepOptions {
  sql: Sql;
  retentionMs: number;
  log: Logger;
  signal: AbortSignal;
  /** Between the end of one run and the start of the next. */
  intervalMs?: number;
  batchSize?: number;
  maxBatches?: number;
  logEveryMs?: number;
}

export interface Sweep {
  /** One run now; resolves to the rows deleted, never rejects. */
  sweep(): Promise<number>;
}

/** `deleteBatch` deletes at most `batchSize` expired rows, under `signal`, and resolves to how many. */
export function startSweep(
  what: string,
  deleteBatch: (batchSize: number, signal: AbortSignal) => Promise<number>,
  { log, signal, intervalMs = 60_000, batchSize = 500, maxBatches = 20, logEveryMs = 600_000 }: SweepOptions,
): Sweep {
  let running: Promise<number> | undefined;
  let lastLoggedAt = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const report = (error: unknown) => {
    const now = performance.now();
    if (now - lastLoggedAt < logEveryMs) {
      suppressed++;
      return;
    }
    log.warn(`${what} sweep failed`, { suppressed, ...errorFields(error) });
    lastLoggedAt = now;
    suppressed = 0;
  };

  const run = async () => {
    let deleted = 0;
    try {
      for (let batch = 0; batch < maxBatches && !signal.aborted; batch++) {
        const count = await deleteBatch(batchSize, signal);
        deleted += count;
        if (count < batchSize) break;
      }
    } catch (error) {
      // Cancelled by shutdown: nothing went wrong.
      if (!signal.aborted) report(error);
    }
    if (deleted > 0) log.debug(`expired ${what} rows deleted`, { deleted });
    return deleted;
  };

  const sweep = () => {
    running ??= run().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = () => {
    if (signal.aborted) return;
    timer = setTimeout(() => void sweep().then(schedule), intervalMs);
    // Deno's timer ids have no unref; there the abort below clears the timer.
    (timer as { unref?: () => void }).unref?.();
  };
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  schedule();
  return { sweep };
}
