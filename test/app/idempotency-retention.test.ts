import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createDb } from '../../src/db/pool.js';
import { createLogger } from '../../src/runtime/logger.js';
import { sweepHelpers } from './idempotency-helpers.js';
import { type NotesHarness, notesHarness } from './notes-harness.js';

// Keys expire after IDEMPOTENCY_RETENTION_MS (1 h here, so that the default
// of 24 h would still replay): rows are aged by moving created_at back, never
// by waiting.

const RETENTION_MS = 3_600_000;
let harness: NotesHarness;

let sweepFor: ReturnType<typeof sweepHelpers>['sweepFor'];
let insertKeys: ReturnType<typeof sweepHelpers>['insertKeys'];
let keysOf: ReturnType<typeof sweepHelpers>['keysOf'];

beforeAll(async () => {
  harness = await notesHarness({ IDEMPOTENCY_RETENTION_MS: String(RETENTION_MS) });
  ({ sweepFor, insertKeys, keysOf } = sweepHelpers(harness, RETENTION_MS));
  return () => harness.close();
});

const age = (owner: string, interval: string) =>
  harness.sql`update idempotency_keys set created_at = now() - ${interval}::interval where owner = ${owner}`;

function post(user: string, title: string, key = 'key-1') {
  return harness.call('POST', '/v1/notes', { user, body: { title }, headers: { 'idempotency-key': key } });
}

describe('Idempotency-Key retention', () => {
  it('does the work again for a key older than the retention, then replays the new answer', async () => {
    const user = `expired-${randomUUID()}`;
    const first = await post(user, 'once');
    await age(user, '2 hours');
    const second = await post(user, 'once');
    expect(second.status).toBe(201);
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    expect(second.json.id).not.toBe(first.json.id);
    const third = await post(user, 'once');
    expect(third.headers.get('idempotent-replayed')).toBe('true');
    expect(third.json).toEqual(second.json);
    expect((await harness.call('GET', '/v1/notes', { user })).json.items).toHaveLength(2);
  });

  it('accepts another body under a key older than the retention', async () => {
    const user = `reused-${randomUUID()}`;
    await post(user, 'one');
    await age(user, '2 hours');
    const other = await post(user, 'two');
    expect(other.status).toBe(201);
    expect(other.json.title).toBe('two');
  });

  it('still replays a key inside the retention', async () => {
    const user = `live-${randomUUID()}`;
    const first = await post(user, 'kept');
    await age(user, '30 minutes');
    const again = await post(user, 'kept');
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.json).toEqual(first.json);
  });
});

describe('the idempotency sweep', () => {
  it('deletes expired keys in bounded batches and keeps live ones', async () => {
    const owner = `sweep-${randomUUID()}`;
    await insertKeys(owner, 1_100, '2 hours');
    await insertKeys(`${owner}-live`, 3, '30 minutes');
    const sweep = sweepFor({ batchSize: 500, maxBatches: 2 });
    // Two batches of 500 at most per run: the rest waits for the next run.
    expect(await sweep.sweep()).toBe(1_000);
    await sweep.sweep();
    expect(await keysOf(owner)).toBe(0);
    expect(await keysOf(`${owner}-live`)).toBe(3);
    expect(sweep.lines.filter((line) => line.severity === 'WARNING')).toEqual([]);
  });

  it('runs on its timer, and does nothing once shutdown has begun', async () => {
    const owner = `timer-${randomUUID()}`;
    await insertKeys(owner, 3, '2 hours');
    const sweep = sweepFor({ intervalMs: 5 });
    await sweep.logged('expired idempotency rows deleted');
    expect(await keysOf(owner)).toBe(0);
    sweep.shutdown.abort();
    await insertKeys(owner, 2, '2 hours');
    expect(await sweep.sweep()).toBe(0);
    expect(await keysOf(owner)).toBe(2);
  });

  it('logs a failing database once per interval and never rejects', async () => {
    const log = createLogger({ level: 'error' });
    const unreachable = createDb({
      url: 'postgres://postgres@127.0.0.1:1/none',
      poolMax: 1,
      connectTimeoutMs: 2_000,
      idleTimeoutMs: 1_000,
      maxLifetimeMs: 60_000,
      statementTimeoutMs: 1_000,
      log,
    });
    onTestFinished(() => unreachable.end(1_000));
    const sweep = sweepFor({ sql: unreachable.sql });
    expect(await sweep.sweep()).toBe(0);
    expect(await sweep.sweep()).toBe(0);
    expect(await sweep.sweep()).toBe(0);
    const warnings = sweep.lines.filter((line) => line.severity === 'WARNING');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ message: 'idempotency sweep failed', suppressed: 0 });
  });
});
