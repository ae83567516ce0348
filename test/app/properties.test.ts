import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type NotesHarness, notesHarness } from './notes-harness.js';

// Property-based: whatever a client sends to any public endpoint, the answer
// is never a 5xx. Bodies, ids, query strings and the conditional and
// idempotency headers are generated; a failure prints the smallest input
// that breaks the property (fast-check shrinks it).

let harness: NotesHarness;
let existingId: string;

beforeAll(async () => {
  harness = await notesHarness();
  const created = await harness.call('POST', '/v1/notes', { body: { title: 'a note the properties read' } });
  existingId = created.json.id;
  return () => harness.close();
});

const RUNS = { numRuns: 60 };

// Anything a JSON body can be, and anything a string body can be.
const jsonValue = fc.jsonValue({ maxDepth: 3 });
const noteLike = fc.record(
  {
    title: fc.oneof(fc.string({ maxLength: 300 }), jsonValue),
    body: fc.oneof(fc.string({ maxLength: 300 }), jsonValue),
  },
  { requiredKeys: [] },
);
const rawBody = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 100 }),
  jsonValue.map((v) => JSON.stringify(v)),
);
const idLike = fc.oneof(
  fc.uuid(),
  fc.string({ maxLength: 60 }).map((s) => encodeURIComponent(s) || 'x'),
  fc.constant('00000000-0000-0000-0000-000000000000'),
);
const headerValue = fc.string({ maxLength: 80 }).filter((s) => /^[\x20-\x7e]*$/.test(s));

function expectNo5xx(status: number, what: unknown) {
  expect(status, JSON.stringify(what)).toBeLessThan(500);
}

describe('no generated input yields a 5xx', () => {
  it('POST /v1/notes with any JSON body, any raw body and any Idempotency-Key', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(noteLike, jsonValue), fc.option(headerValue, { nil: undefined }), async (body, key) => {
        const reply = await harness.call('POST', '/v1/notes', { body, headers: key ? { 'idempotency-key': key } : {} });
        expectNo5xx(reply.status, { body, key });
      }),
      RUNS,
    );
    await fc.assert(
      fc.asyncProperty(
        rawBody,
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
        async (body, type) => {
          const reply = await harness.call('POST', '/v1/notes', { body, headers: { 'content-type': type } });
          expectNo5xx(reply.status, { body, type });
        },
      ),
      RUNS,
    );
  });

  it('GET /v1/notes with any cursor and limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 120 }),
        fc.oneof(fc.integer(), fc.string({ maxLength: 12 })),
        async (cursor, limit) => {
          const query = new URLSearchParams({ cursor, limit: String(limit) });
          const reply = await harness.call('GET', `/v1/notes?${query}`);
          expectNo5xx(reply.status, { cursor, limit });
        },
      ),
      RUNS,
    );
  });

  it('GET, PATCH and DELETE /v1/notes/:id with any id, body and conditional headers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(idLike, fc.constant('existing')),
        fc.constantFrom('GET', 'PATCH', 'DELETE'),
        fc.oneof(noteLike, jsonValue),
        fc.option(headerValue, { nil: undefined }),
        fc.option(headerValue, { nil: undefined }),
        async (id, method, body, ifMatch, ifNoneMatch) => {
          const headers: Record<string, string> = {};
          if (ifMatch !== undefined) headers['if-match'] = ifMatch;
          if (ifNoneMatch !== undefined) headers['if-none-match'] = ifNoneMatch;
          const target = id === 'existing' ? existingId : id;
          const reply = await harness.call(method, `/v1/notes/${target}`, {
            headers,
            ...(method === 'PATCH' ? { body } : {}),
          });
          expectNo5xx(reply.status, { id, method, body, ifMatch, ifNoneMatch });
        },
      ),
      RUNS,
    );
  });

  it('any method on any path, with or without a token', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
        fc.webPath(),
        fc.boolean(),
        async (method, path, authenticated) => {
          const headers: Record<string, string> = {
            authorization: authenticated ? `Bearer ${await harness.token()}` : 'Bearer not-a-token',
          };
          const reply = await harness.app.request(path || '/', { method, headers });
          expectNo5xx(reply.status, { method, path, authenticated });
        },
      ),
      RUNS,
    );
  });
});
