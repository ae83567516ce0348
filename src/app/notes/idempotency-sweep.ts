import { type Sql, withSignal } from '../../db/pool.js';
import { errorFields, type Logger } from '../../runtime/logger.js';
import { expiredBefore } from './idempotency.js';

/**
 * Deletes expired Idempotency-Key rows, so the table (each row holding a
 * whole response) stays bounded. Expiry itself is enforced by the claim
 * (idempotency.ts); the sweep only reclaims space, so it can be slow, late
 * or failing without any request answering differently.
 *
 * It never waits on a request: `skip locked` passes over rows a request holds
 * (a claim taking an expired row over) instead of waiting for them. A request
 * waits on it at most for one batch, when it claims an expired key the batch
 * is deleting: each batch is one short autocommitted statement of at most
 * `batchSize` rows. Every instance runs one; `skip locked` also keeps them off
 * each other's rows.
 * A run stops after `maxBatches`, so a backlog is worked off over several
 * runs rather than in one long one. The timer is unref'd and stops when
 * `signal` (shutdown) aborts, which also cancels a batch in flight.
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

export function startIdempotencySweep({
  sql,
  retentionMs,
  log,
  signal,
  intervalMs = 60_000,
  batchSize = 500,
  maxBatches = 20,
  logEveryMs = 600_000,
}: SweepOptions): Sweep {
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
    log.warn('idempotency sweep failed', { suppressed, ...errorFields(error) });
    lastLoggedAt = now;
    suppressed = 0;
  };

  const run = async () => {
    let deleted = 0;
    try {
      for (let batch = 0; batch < maxBatches && !signal.aborted; batch++) {
        const rows = await withSignal(
          sql`delete from idempotency_keys where ctid = any(array(
                select ctid from idempotency_keys
                where created_at < ${expiredBefore(sql, retentionMs)}
                limit ${batchSize} for update skip locked))`,
          signal,
        );
        deleted += rows.count;
        if (rows.count < batchSize) break;
      }
    } catch (error) {
      // Cancelled by shutdown: nothing went wrong.
      if (!signal.aborted) report(error);
    }
    if (deleted > 0) log.debug('expired idempotency keys deleted', { deleted });
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
