import { readdirSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrations } from '../../service/migrations/index.js';
import { checksum, type Migration, MigrationError, migrate } from '../../src/db/migrate.js';
import { createDb } from '../../src/db/pool.js';
import { createLogger } from '../../src/runtime/logger.js';
import { freshDatabase } from '../db-helpers.js';

const log = createLogger({ level: 'error' });

function dbIn(url: string) {
  const db = createDb({
    url,
    poolMax: 4,
    connectTimeoutMs: 5_000,
    idleTimeoutMs: 10_000,
    maxLifetimeMs: 60_000,
    statementTimeoutMs: 10_000,
    log,
  });
  onTestFinished(() => db.end(1_000));
  return db;
}

const sample: Migration[] = [
  { name: '0001_a.sql', sql: 'create table a (id int primary key);' },
  { name: '0002_b.sql', sql: 'create table b (id int primary key); insert into b values (1);' },
];

describe('migrations', () => {
  it('applies every migration to a fresh database and records each with its checksum', async () => {
    const db = dbIn(await freshDatabase());
    expect(await migrate(db.sql, sample, log)).toEqual(['0001_a.sql', '0002_b.sql']);
    const rows = await db.sql`select name, checksum from runway_migrations order by name`;
    expect(rows).toEqual([
      { name: '0001_a.sql', checksum: await checksum(sample[0]?.sql ?? '') },
      { name: '0002_b.sql', checksum: await checksum(sample[1]?.sql ?? '') },
    ]);
    expect(await db.sql`select id from b`).toEqual([{ id: 1 }]);
  });

  it('does nothing on a second run', async () => {
    const db = dbIn(await freshDatabase());
    await migrate(db.sql, sample, log);
    expect(await migrate(db.sql, sample, log)).toEqual([]);
  });

  it('applies only what is new', async () => {
    const db = dbIn(await freshDatabase());
    await migrate(db.sql, sample.slice(0, 1), log);
    expect(await migrate(db.sql, sample, log)).toEqual(['0002_b.sql']);
  });

  it('refuses an applied migration that was edited, naming the file', async () => {
    const db = dbIn(await freshDatabase());
    await migrate(db.sql, sample, log);
    const edited = [sample[0] as Migration, { name: '0002_b.sql', sql: 'create table b (id bigint primary key);' }];
    await expect(migrate(db.sql, edited, log)).rejects.toThrow(MigrationError);
    await expect(migrate(db.sql, edited, log)).rejects.toThrow(/0002_b\.sql was edited/);
  });

  it('rolls a failing migration back and names it', async () => {
    const db = dbIn(await freshDatabase());
    const broken: Migration[] = [
      { name: '0001_ok.sql', sql: 'create table ok (id int);' },
      { name: '0002_broken.sql', sql: 'create table half (id int); select * from missing_table;' },
    ];
    await expect(migrate(db.sql, broken, log)).rejects.toThrow(/0002_broken\.sql failed/);
    expect(await db.sql`select name from runway_migrations`).toEqual([{ name: '0001_ok.sql' }]);
    expect(await db.sql`select to_regclass('half') as t`).toEqual([{ t: null }]);
  });

  it('ships every .sql file of service/migrations, in order, and they apply cleanly', async () => {
    const files = readdirSync('service/migrations')
      .filter((f) => f.endsWith('.sql'))
      .sort();
    expect(migrations.map((m) => m.name)).toEqual(files);
    const db = dbIn(await freshDatabase());
    expect(await migrate(db.sql, migrations, log)).toEqual(files);
  });

  it('indexes idempotency keys by age, for the sweep of expired ones', async () => {
    const db = dbIn(await freshDatabase());
    await migrate(db.sql, migrations, log);
    const indexes = await db.sql`
      select indexdef from pg_indexes
      where schemaname = current_schema() and tablename = 'idempotency_keys'
        and indexname = 'idempotency_keys_created_at'`;
    expect(indexes).toHaveLength(1);
    expect(indexes[0]?.indexdef).toMatch(/\(created_at\)$/);
  });
});
