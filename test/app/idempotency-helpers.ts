import { onTestFinished } from 'vitest';
import { startIdempotencySweep } from '../../service/app/notes/idempotency-sweep.js';
import { createLogger } from '../../src/runtime/logger.js';
import type { NotesHarness } from './notes-harness.js';

/** What the sweep tests share: a sweep of their own, keys inserted already aged, and a count. */
export function sweepHelpers(harness: NotesHarness, retentionMs: number) {
  /** A sweep stopped when the test ends, and the lines it logs. */
  function sweepFor(options: {
    sql?: NotesHarness['sql'];
    batchSize?: number;
    maxBatches?: number;
    intervalMs?: number;
  }) {
    const shutdown = new AbortController();
    onTestFinished(() => shutdown.abort());
    const lines: { severity: string; message: string; deleted?: number; suppressed?: number }[] = [];
    const listeners: (() => void)[] = [];
    const log = createLogger({
      level: 'debug',
      write: (line) => {
        lines.push(JSON.parse(line));
        for (const listener of listeners) listener();
      },
    });
    const sweep = startIdempotencySweep({
      sql: harness.sql,
      retentionMs,
      log,
      signal: shutdown.signal,
      ...options,
    });
    const logged = (message: string) =>
      new Promise<void>((resolve) => {
        const check = () => lines.some((line) => line.message === message) && resolve();
        listeners.push(check);
        check();
      });
    return { ...sweep, shutdown, lines, logged };
  }

  async function insertKeys(owner: string, count: number, interval: string) {
    await harness.sql`
      insert into idempotency_keys (owner, key, request_hash, status, response, created_at)
      select ${owner}, 'k' || i, 'hash', 201, '{}'::jsonb, now() - ${interval}::interval
      from generate_series(1, ${count}::int) as i`;
  }

  const keysOf = async (owner: string) =>
    Number((await harness.sql`select count(*)::int as n from idempotency_keys where owner = ${owner}`)[0]?.n);

  return { sweepFor, insertKeys, keysOf };
}
