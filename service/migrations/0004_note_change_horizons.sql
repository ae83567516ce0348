-- The change feed keeps FEED_RETENTION_MS of history (src/app/notes/feed-sweep.ts).
-- What the sweep deleted is remembered per owner as the highest seq it took:
-- a client that resumes below it has missed changes that are gone, and is
-- told so (`truncated`) instead of getting a feed with a silent gap.
create table if not exists note_change_horizons (
  owner text primary key,
  pruned_through bigint not null
);
-- The sweep finds expired changes by age.
create index if not exists note_changes_at on note_changes (at);
