-- Idempotency keys expire after IDEMPOTENCY_RETENTION_MS, and the sweep finds
-- the expired ones by age. Built inside the migration's transaction
-- (`concurrently` cannot run in one), so writes to the table wait while it
-- builds. On a large table, build it by hand first with
--   create index concurrently idempotency_keys_created_at on idempotency_keys (created_at);
-- and `if not exists` skips it here.
create index if not exists idempotency_keys_created_at on idempotency_keys (created_at);
