-- Notes, owned by the `sub` of the caller's token.
create table notes (
  id uuid primary key,
  owner text not null,
  title text not null check (char_length(title) between 1 and 200),
  body text not null default '' check (char_length(body) <= 10000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Keyset pagination walks (owner, created_at, id).
create index notes_owner_created_id on notes (owner, created_at, id);

-- Idempotency-Key on POST: one row per (owner, key), with the request's
-- fingerprint and the response it got, so a retry replays it.
create table idempotency_keys (
  owner text not null,
  key text not null,
  request_hash text not null,
  status integer,
  response jsonb,
  created_at timestamptz not null default now(),
  primary key (owner, key)
);
