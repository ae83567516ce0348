import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { onTestFinished } from 'vitest';

/** TEST_DATABASE_URL when set (CI: the local PostgreSQL), else the machine's local server. */
export function testDatabaseUrl(): string {
  return process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

/** A superuser-ish connection for assertions (pg_stat_activity) and schema setup. */
export function adminSql() {
  const sql = postgres(testDatabaseUrl(), { max: 2, onnotice: () => {} });
  onTestFinished(() => sql.end({ timeout: 1 }));
  return sql;
}

/**
 * A fresh schema, dropped afterwards; returns its name. Per test by default;
 * a `beforeAll` passes its own collector and runs it from the teardown it returns.
 */
export async function freshSchema(teardown: (fn: () => Promise<void>) => void = onTestFinished): Promise<string> {
  const schema = `t_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const sql = postgres(testDatabaseUrl(), { max: 1, onnotice: () => {} });
  await sql.unsafe(`create schema ${schema}`);
  teardown(async () => {
    await sql.unsafe(`drop schema ${schema} cascade`);
    await sql.end({ timeout: 1 });
  });
  return schema;
}

/** The database URL with `search_path` set to `schema` (postgres.js passes unknown query params as connection parameters). */
export function urlWithSchema(schema: string): string {
  const url = new URL(testDatabaseUrl());
  url.searchParams.set('search_path', schema);
  return url.href;
}
