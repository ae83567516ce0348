-- The owner's change feed (GET /v1/notes/events, src/app/notes/feed.ts). Every
-- write to notes adds a row here in the same statement (store.ts), under a
-- transaction-scoped advisory lock per owner taken before the row's seq is
-- drawn: an owner's changes then commit in seq order, so a reader that has
-- seen seq n never finds a smaller one committed later, and resuming after n
-- (Last-Event-ID) has no gap and no duplicate.
create table if not exists note_changes (
  seq bigint generated always as identity primary key,
  owner text not null,
  note_id uuid not null,
  kind text not null check (kind in ('created', 'updated', 'deleted')),
  version text,
  at timestamptz not null default clock_timestamp()
);
create index if not exists note_changes_owner_seq on note_changes (owner, seq);
