import { withSignal } from 'runway/postgres';
import { expiredBefore } from './idempotency.js';
import { type Sweep, type SweepOptions, startSweep } from './sweep.js';

/**
 * Deletes expired Idempotency-Key rows, so the table (each row holding a
 * whole response) stays bounded (sweep.ts). Expiry itself is enforced by
 * the claim (idempotency.ts). A request waits on the sweep at most for one
 * batch, when it claims an expired key the batch is deleting.
 */
export function startIdempotencySweep(options: SweepOptions): Sweep {
  const { sql, retentionMs } = options;
  return startSweep(
    'idempotency',
    async (batchSize, signal) => {
      const rows = await withSignal(
        sql`delete from idempotency_keys where ctid = any(array(
              select ctid from idempotency_keys
              where created_at < ${expiredBefore(sql, retentionMs)}
              limit ${batchSize} for update skip locked))`,
        signal,
      );
      return rows.count;
    },
    options,
  );
}
