import { withSignal } from 'runway/postgres';
import { type Sweep, type SweepOptions, startSweep } from './sweep.js';

/**
 * Deletes the change feed's history older than FEED_RETENTION_MS (sweep.ts),
 * so `note_changes` stays bounded, and moves each owner's horizon up to the
 * highest seq it deleted, in the same statement: feed.ts tells a client that
 * resumes below the horizon that its history is gone (migration 0004).
 * Writers never wait on it: they insert, it deletes old rows.
 */
export function startFeedSweep(options: SweepOptions): Sweep {
  const { sql, retentionMs } = options;
  return startSweep(
    'change feed',
    async (batchSize, signal) => {
      const [row] = await withSignal(
        sql<{ count: number }[]>`
          with gone as (
            delete from note_changes where seq = any(array(
              select seq from note_changes
              where at < now() - ${retentionMs}::float8 * interval '1 millisecond'
              order by seq limit ${batchSize} for update skip locked))
            returning owner, seq
          ),
          horizon as (
            insert into note_change_horizons (owner, pruned_through)
            select owner, max(seq) from gone group by owner
            on conflict (owner) do update
              set pruned_through = greatest(note_change_horizons.pruned_through, excluded.pruned_through)
          )
          select count(*)::int as count from gone`,
        signal,
      );
      return row?.count ?? 0;
    },
    options,
  );
}
