import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createNoteStore } from '../../service/app/notes/store.js';
import { databaseProblem } from '../../src/db/errors.js';
import type { Sql } from '../../src/db/pool.js';
import { requireRealServer } from '../db-helpers.js';
import { createNote, subscribe } from './feed-helpers.js';
import { sweepHelpers } from './idempotency-helpers.js';
import { errorOf, type NotesHarness, notesHarness } from './notes-harness.js';

/**
 * The app's database behaviour that only a real Postgres server can show:
 * row locks held by one connection while another works (PGlite is one
 * backend behind its socket) and statement_timeout. Like
 * test/db/real-postgres.test.ts, this file runs only with TEST_DATABASE_URL
 * (vitest.config.ts leaves it out otherwise); .ci/run always sets it.
 */
requireRealServer();

const RETENTION_MS = 3_600_000;
let harness: NotesHarness;
let helpers: ReturnType<typeof sweepHelpers>;

beforeAll(async () => {
  harness = await notesHarness({ IDEMPOTENCY_RETENTION_MS: String(RETENTION_MS) });
  helpers = sweepHelpers(harness, RETENTION_MS);
  return () => harness.close();
});

describe('the idempotency sweep on a real server', () => {
  it('passes over an expired row a request holds instead of waiting for it', async () => {
    const owner = `held-${randomUUID()}`;
    await helpers.insertKeys(owner, 2, '2 hours');
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding = () => {};
    const held = new Promise<void>((resolve) => {
      holding = resolve;
    });
    const transaction = harness.sql.begin(async (tx) => {
      await tx`select 1 from idempotency_keys where owner = ${owner} and key = 'k1' for update`;
      holding();
      await released;
    });
    await held;
    const sweep = helpers.sweepFor({});
    try {
      await sweep.sweep();
      expect(await harness.sql`select key from idempotency_keys where owner = ${owner}`).toEqual([{ key: 'k1' }]);
    } finally {
      release();
      await transaction;
    }
    await sweep.sweep();
    expect(await helpers.keysOf(owner)).toBe(0);
  });
});

describe('database errors as problems on a real server', () => {
  it('maps a statement stopped by statement_timeout to query_timeout with Retry-After', async () => {
    const error = await errorOf(
      harness.sql.begin(async (tx) => {
        await tx`set local statement_timeout = 1`;
        await tx`select pg_sleep(1)`;
      }),
    );
    const problem = databaseProblem(error);
    expect(problem).toMatchObject({ status: 503, code: 'query_timeout', headers: { 'retry-after': '2' } });
  });
});

describe('the change feed on a real server', () => {
  it('delivers a change whose transaction commits late, before any change drawn after it', async () => {
    const feed = await subscribe(harness, 'feed-e');
    await feed.until(1);
    // A transaction holds the owner's first change uncommitted while a second write arrives.
    const store = createNoteStore(harness.sql);
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let inserted = () => {};
    const insertedYet = new Promise<void>((resolve) => {
      inserted = resolve;
    });
    const transaction = harness.sql.begin(async (tx) => {
      await store.insert('feed-e', { title: 'held', body: '' }, new AbortController().signal, tx as unknown as Sql);
      inserted();
      await held;
    });
    await insertedYet;
    let secondDone = false;
    const second = createNote(harness, 'feed-e', 'later').then(() => {
      secondDone = true;
    });
    // Until the second write has either committed (no ordering) or waits on the owner's lock (polled: no event says so).
    for (let tries = 0; tries < 250 && !secondDone; tries++) {
      const [row] = await harness.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and wait_event = 'advisory'`;
      if ((row?.n ?? 0) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    release();
    await transaction;
    await second;
    const events = (await feed.until(3)).slice(1);
    const rows = await harness.sql<{ seq: string }[]>`
      select seq::text as seq from note_changes where owner = 'feed-e' order by note_changes.seq`;
    expect(events.map((e) => e.id)).toEqual(rows.map((r) => r.seq));
  });
});
