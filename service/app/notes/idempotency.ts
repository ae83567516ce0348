import { type Sql, withSignal } from 'runway/postgres';
import { sha256Hex } from '../sha256.js';

/**
 * `Idempotency-Key` for POST: the first request with a key does the work and
 * stores its answer in the same transaction; a retry with the same key and
 * the same body gets that answer again; the same key with another body is a
 * conflict. Two requests racing with one key meet at the primary key of
 * `idempotency_keys`: the second waits for the first to commit, then replays.
 *
 * A key is kept for `retentionMs` (IDEMPOTENCY_RETENTION_MS; 24 h, as in the
 * examples of the IETF draft "The Idempotency-Key HTTP Header Field"). After
 * that it is treated as absent: a retry does the work again. The claim takes
 * over an expired row the sweep has not deleted yet, so expiry never depends
 * on when the sweep last ran.
 */

export interface StoredResponse<T> {
  status: number;
  body: T;
}

export type Outcome<T> = { kind: 'fresh' | 'replayed'; response: StoredResponse<T> } | { kind: 'conflict' };

/** Rows created before this instant have expired. One definition, for the claim and the sweep. */
export const expiredBefore = (sql: Sql, retentionMs: number) =>
  sql`now() - ${retentionMs}::float8 * interval '1 millisecond'`;

export function fingerprint(value: unknown): Promise<string> {
  return sha256Hex(JSON.stringify(value));
}

export async function once<T>(
  sql: Sql,
  scope: { owner: string; key: string; requestHash: string; retentionMs: number },
  work: (tx: Sql) => Promise<StoredResponse<T>>,
  signal: AbortSignal,
): Promise<Outcome<T>> {
  const { owner, key, requestHash, retentionMs } = scope;
  return (await sql.begin(async (tx) => {
    const claimed = await withSignal(
      tx`insert into idempotency_keys (owner, key, request_hash) values (${owner}, ${key}, ${requestHash})
         on conflict (owner, key) do update
           set request_hash = excluded.request_hash, status = null, response = null, created_at = now()
           where idempotency_keys.created_at < ${expiredBefore(tx as unknown as Sql, retentionMs)}
         returning key`,
      signal,
    );
    if (claimed.length > 0) {
      const response = await work(tx as unknown as Sql);
      await withSignal(
        tx`update idempotency_keys set status = ${response.status}, response = ${tx.json(response.body as never)}
           where owner = ${owner} and key = ${key}`,
        signal,
      );
      return { kind: 'fresh', response };
    }
    const [row] = await withSignal(
      tx<{ request_hash: string; status: number; response: T }[]>`
        select request_hash, status, response from idempotency_keys where owner = ${owner} and key = ${key}`,
      signal,
    );
    if (!row || row.request_hash !== requestHash) return { kind: 'conflict' };
    return { kind: 'replayed', response: { status: row.status, body: row.response } };
  })) as Outcome<T>;
}
