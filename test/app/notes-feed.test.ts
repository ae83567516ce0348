import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../service/app/create-app.js';
import { startFeedSweep } from '../../service/app/notes/feed-sweep.js';
import { createLogger } from '../../src/runtime/logger.js';
import { createNote, subscribe } from './feed-helpers.js';
import { type NotesHarness, notesHarness } from './notes-harness.js';

/**
 * The change feed, GET /v1/notes/events (src/app/notes/feed.ts), in memory
 * on a migrated database. A second app on the same database stands for a
 * second instance: its writes reach this one's subscribers by the poll.
 */

let harness: NotesHarness;
let other: ReturnType<typeof createApp>;

beforeAll(async () => {
  harness = await notesHarness();
  other = createApp({ env: harness.env, log: createLogger({ level: 'error' }), db: harness.db });
  return () => harness.close();
});

describe('the change feed', () => {
  it("streams the owner's changes in order after a ready event, and none of another owner's", async () => {
    const feed = await subscribe(harness, 'feed-a');
    expect(feed.res.headers.get('content-type')).toBe('text/event-stream');
    const [ready] = await feed.until(1);
    expect(ready).toMatchObject({ event: 'ready', data: '{}' });
    await createNote(harness, 'feed-someone-else', 'not theirs');
    const id = await createNote(harness, 'feed-a', 'first');
    await harness.call('PATCH', `/v1/notes/${id}`, { user: 'feed-a', body: { title: 'second' } });
    await harness.call('DELETE', `/v1/notes/${id}`, { user: 'feed-a' });
    const events = (await feed.until(4)).slice(1);
    expect(events.map((e) => e.event)).toEqual(['created', 'updated', 'deleted']);
    expect(events.map((e) => JSON.parse(e.data as string).id)).toEqual([id, id, id]);
    const ids = events.map((e) => Number(e.id));
    expect(ids[0]).toBeGreaterThan(Number(ready?.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
  });

  it('resumes after Last-Event-ID with no gap and no duplicate', async () => {
    const first = await subscribe(harness, 'feed-b');
    await first.until(1);
    for (const title of ['one', 'two', 'three']) await createNote(harness, 'feed-b', title);
    const seen = (await first.until(4)).slice(1);
    const again = await subscribe(harness, 'feed-b', { 'last-event-id': seen[0]?.id as string });
    const resumed = await again.until(2);
    expect(resumed.map((e) => e.id)).toEqual(seen.slice(1).map((e) => e.id));
  });

  it("delivers another instance's writes by the poll", async () => {
    const feed = await subscribe(harness, 'feed-c');
    await feed.until(1);
    const id = await createNote(harness, 'feed-c', 'from elsewhere', other);
    const [, created] = await feed.until(2);
    expect(created).toMatchObject({ event: 'created' });
    expect(JSON.parse(created?.data as string).id).toBe(id);
  });

  it('has no gap and no duplicate under concurrent writers on two instances', async () => {
    const feed = await subscribe(harness, 'feed-d');
    await feed.until(1);
    const writes = 40;
    await Promise.all(
      Array.from({ length: writes }, (_, i) =>
        createNote(harness, 'feed-d', `w${i}`, i % 2 === 0 ? harness.app : other),
      ),
    );
    const events = (await feed.until(writes + 1, 20_000)).slice(1);
    const rows = await harness.sql<{ seq: string }[]>`
      select seq::text as seq from note_changes where owner = 'feed-d' order by note_changes.seq`;
    expect(events.map((e) => e.id)).toEqual(rows.map((r) => r.seq));
  });

  it('answers a Last-Event-ID that is not one of its ids with a 400 problem', async () => {
    const reply = await harness.call('GET', '/v1/notes/events', { headers: { 'last-event-id': '-1; drop' } });
    expect(reply.status).toBe(400);
    expect(reply.json).toMatchObject({ code: 'bad_last_event_id' });
  });

  it('asks for a token like the rest of /v1', async () => {
    const res = await harness.app.request('/v1/notes/events');
    expect(res.status).toBe(401);
  });
});

describe("the change feed's retention", () => {
  const DAY_MS = 86_400_000;
  const sweepOnce = async () => {
    const shutdown = new AbortController();
    const sweep = startFeedSweep({
      sql: harness.sql,
      retentionMs: DAY_MS,
      log: createLogger({ level: 'error' }),
      signal: shutdown.signal,
      intervalMs: 3_600_000,
    });
    const deleted = await sweep.sweep();
    shutdown.abort();
    return deleted;
  };
  const seqsOf = async (owner: string) =>
    (
      await harness.sql<{ seq: string }[]>`
        select seq::text as seq from note_changes where owner = ${owner} order by note_changes.seq`
    ).map((row) => row.seq);

  it('deletes changes past FEED_RETENTION_MS, and tells a client resuming from before them, then goes on', async () => {
    for (const title of ['a', 'b', 'c', 'd']) await createNote(harness, 'feed-old', title);
    const [first, second, third, fourth] = await seqsOf('feed-old');
    // The first two are two days old: past the retention.
    await harness.sql`update note_changes set at = now() - interval '2 days' where seq <= ${second as string}::bigint and owner = 'feed-old'`;
    expect(await sweepOnce()).toBeGreaterThanOrEqual(2);
    expect(await seqsOf('feed-old')).toEqual([third, fourth]);
    const [horizon] =
      await harness.sql`select pruned_through::text as seq from note_change_horizons where owner = 'feed-old'`;
    expect(horizon?.seq).toBe(second);

    // From before the horizon: what came after `first` is partly gone.
    const lost = await subscribe(harness, 'feed-old', { 'last-event-id': first as string });
    const [truncated] = await lost.until(1);
    expect(truncated).toMatchObject({ event: 'truncated', id: fourth, data: '{}' });
    const id = await createNote(harness, 'feed-old', 'e');
    const [, created] = await lost.until(2);
    expect(created).toMatchObject({ event: 'created' });
    expect(JSON.parse(created?.data as string).id).toBe(id);

    // From the horizon itself nothing is lost: the changes after it, as always.
    const kept = await subscribe(harness, 'feed-old', { 'last-event-id': second as string });
    expect((await kept.until(3)).map((event) => event.id)).toEqual([
      third,
      fourth,
      ...(await seqsOf('feed-old')).slice(2),
    ]);
  });

  it('tells a subscriber that the sweep overtook mid-catch-up, instead of skipping what it deleted', async () => {
    // 150 changes, all but the last 10 past the retention; the subscriber resumes from the first
    // and reads slowly: the sweep runs while its first page is still being sent.
    await harness.sql`
      insert into note_changes (owner, note_id, kind, version)
      select 'feed-overtaken', gen_random_uuid(), 'created', '1' from generate_series(1, 150)`;
    const seqs = await seqsOf('feed-overtaken');
    await harness.sql`
      update note_changes set at = now() - interval '2 days'
      where owner = 'feed-overtaken' and seq <= ${seqs[139] as string}::bigint`;
    const slow = await subscribe(harness, 'feed-overtaken', { 'last-event-id': seqs[0] as string }, { pauseAt: 20 });
    await slow.until(20);
    expect(await sweepOnce()).toBeGreaterThanOrEqual(140);
    slow.resume();
    const events = await slow.until(101);
    const truncatedAt = events.findIndex((event) => event.event === 'truncated');
    expect(truncatedAt, JSON.stringify(events.slice(95, 105))).toBeGreaterThan(-1);
    // Before it, every change in order from the resume point, none skipped; then on from the newest.
    expect(events.slice(0, truncatedAt).map((event) => event.id)).toEqual(seqs.slice(1, 1 + truncatedAt));
    expect(events[truncatedAt]).toMatchObject({ event: 'truncated', id: seqs[149] });
  });

  it('tells a client resuming from a seq this database never had (a restore) the same way', async () => {
    await createNote(harness, 'feed-restored', 'a');
    const [latest] = await seqsOf('feed-restored');
    const future = await subscribe(harness, 'feed-restored', { 'last-event-id': '999999999999' });
    expect((await future.until(1))[0]).toMatchObject({ event: 'truncated', id: latest });
  });
});
