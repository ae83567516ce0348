import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type NotesHarness, notesHarness } from './notes-harness.js';

// Property-based: whatever a client sends to any public endpoint, the answer
// is never a 5xx. Bodies, ids, query strings (cursors that decode among
// them), the conditional and idempotency headers and the token's `sub` are
// generated; a failure prints the smallest input that breaks the property
// (fast-check shrinks it).

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
// What UTF-16, UTF-8 and Postgres disagree on: NUL (text cannot hold it),
// unpaired surrogates (no UTF-8 form), astral code points (two UTF-16 units,
// one character for char_length).
const astral = fc.integer({ min: 0x1_0000, max: 0x10_ffff }).map((point) => String.fromCodePoint(point));
const awkwardChar = fc.oneof(
  fc.constant('\u0000'),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
  astral,
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const text = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: awkwardChar, maxLength: 300 }),
  // Around the 200-character title limit, counted either way.
  fc.string({ unit: astral, minLength: 95, maxLength: 205 }),
);
const noteLike = fc.oneof(
  fc.record({ title: fc.oneof(text, jsonValue), body: fc.oneof(text, jsonValue) }, { requiredKeys: [] }),
  // The right shape, so the strings themselves reach validation and the database.
  fc.record({ title: text, body: text }, { requiredKeys: ['title'] }),
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
const idempotencyKey = fc.oneof(headerValue, fc.stringMatching(/^[A-Za-z0-9._:-]{1,40}$/));
// Entity-tag lists as RFC 9110 writes them, ours (`"v<digits>"`) among others, weak or strong.
const entityTag = fc
  .tuple(
    fc.boolean(),
    fc.oneof(
      fc.stringMatching(/^v\d{1,20}$/),
      fc.string({ maxLength: 12 }).filter((s) => /^[\x20\x21\x23-\x7e]*$/.test(s)),
    ),
  )
  .map(([weak, opaque]) => `${weak ? 'W/' : ''}"${opaque}"`);
const conditional = fc.oneof(
  headerValue,
  fc.constant('*'),
  fc.array(fc.oneof(entityTag, headerValue), { minLength: 1, maxLength: 4 }).map((tags) => tags.join(', ')),
);
// Cursors that decode: a time in microseconds (huge, beyond Postgres'
// timestamp range, fractional, not a string) and an id, as the server writes them.
const cursorTime = fc.oneof(
  fc.bigInt({ min: 0n, max: 10n ** 20n - 1n }).map(String),
  fc.bigInt({ min: 9n * 10n ** 18n, max: 10n ** 20n - 1n }).map(String),
  fc.constantFrom('99999999999999999999', '9223372036854775807', '253402300800000000', '253402300799999999'),
  fc.double().map(String),
  fc.integer(),
  jsonValue,
);
// Mostly a valid limit, so the cursor is what gets tested.
const limit = fc.option(fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer(), fc.string({ maxLength: 12 })), {
  nil: undefined,
});
const wellFormedCursor = fc
  .tuple(cursorTime, fc.oneof(fc.uuid(), fc.string({ maxLength: 40 })))
  .map((pair) => Buffer.from(JSON.stringify(pair)).toString('base64url'));

function expectNo5xx(status: number, what: unknown) {
  expect(status, JSON.stringify(what)).toBeLessThan(500);
}

describe('no generated input yields a 5xx', () => {
  it('POST /v1/notes with any JSON body, any raw body and any Idempotency-Key', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(noteLike, jsonValue),
        fc.option(idempotencyKey, { nil: undefined }),
        async (body, key) => {
          const reply = await harness.call('POST', '/v1/notes', {
            body,
            headers: key ? { 'idempotency-key': key } : {},
          });
          expectNo5xx(reply.status, { body, key });
        },
      ),
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
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 120 }), wellFormedCursor), limit, async (cursor, limit) => {
        const query = new URLSearchParams({ cursor, ...(limit === undefined ? {} : { limit: String(limit) }) });
        const reply = await harness.call('GET', `/v1/notes?${query}`);
        expectNo5xx(reply.status, { cursor, limit });
      }),
      RUNS,
    );
  });

  it('GET, PATCH and DELETE /v1/notes/:id with any id, body and conditional headers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(idLike, fc.constant('existing')),
        fc.constantFrom('GET', 'PATCH', 'DELETE'),
        fc.oneof(noteLike, jsonValue),
        fc.option(conditional, { nil: undefined }),
        fc.option(conditional, { nil: undefined }),
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

  it('any sub claim in a valid token, on reads and writes', async () => {
    await fc.assert(
      fc.asyncProperty(text, fc.constantFrom('GET', 'POST'), async (sub, method) => {
        const reply = await harness.app.request('/v1/notes', {
          method,
          headers: { authorization: `Bearer ${await harness.token({ sub })}`, 'content-type': 'application/json' },
          ...(method === 'POST' ? { body: JSON.stringify({ title: 'by any sub' }) } : {}),
        });
        expectNo5xx(reply.status, { sub, method });
      }),
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
