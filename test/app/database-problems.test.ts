import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../service/app/create-app.js';
import { databaseProblem } from '../../src/db/errors.js';
import { createLogger } from '../../src/runtime/logger.js';
import { errorOf, type NotesHarness, notesHarness } from './notes-harness.js';

// How database errors become problems (src/db/errors.ts), with errors raised
// by the database itself.

let harness: NotesHarness;

beforeAll(async () => {
  harness = await notesHarness();
  return () => harness.close();
});

describe('database errors as problems', () => {
  it('answers a data exception (SQLSTATE class 22) with 400, never repeating the database message', async () => {
    const { sql } = harness;
    const errors = [
      await errorOf(sql`select ${'nul \u0000 inside'}::text`), // 22021
      await errorOf(sql`select to_timestamp(${'1e300'}::float8)`), // 22008
      await errorOf(sql`select ${'99999999999'}::int`), // 22003
      await errorOf(sql`select ${'secret-not-a-uuid'}::uuid`), // 22P02: the message quotes the input
    ];
    for (const error of errors) {
      expect(error.code, error.message).toMatch(/^22/);
      const problem = databaseProblem(error);
      expect(problem?.status, error.code).toBe(400);
      expect(problem?.code).toBe('invalid_value');
      expect(problem?.message).not.toContain(error.message);
      expect(problem?.message).not.toContain('secret');
    }
  });

  it('answers a value the database refused with 400 problem+json and logs a warning, not an error', async () => {
    const lines: { severity: string; message: string; sqlState?: string }[] = [];
    const log = createLogger({ level: 'warn', write: (line) => lines.push(JSON.parse(line)) });
    const app = createApp({ env: harness.env, log, db: harness.db });
    app.get('/probe', async () => {
      await harness.sql`select to_timestamp(${'1e300'}::float8)`;
      return new Response('unreachable');
    });
    const res = await app.request('/probe');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.text()).not.toMatch(/timestamp out of range/);
    expect(lines).toEqual([expect.objectContaining({ severity: 'WARNING', sqlState: '22008' })]);
  });

  it('answers query_timeout with 503 and Retry-After, like database_unavailable', () => {
    for (const code of ['57014', 'ECONNREFUSED']) {
      const problem = databaseProblem({ code });
      expect(problem?.status).toBe(503);
      expect(problem?.headers).toEqual({ 'retry-after': '2' });
    }
  });

  it('leaves errors it does not know to the generic 500', () => {
    expect(databaseProblem(new Error('boom'))).toBeUndefined();
    expect(databaseProblem({ code: '23505' })).toBeUndefined();
    expect(databaseProblem(null)).toBeUndefined();
  });
});
