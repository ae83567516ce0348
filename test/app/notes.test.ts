import { beforeAll, describe, expect, it } from 'vitest';
import { type NotesHarness, notesHarness } from './notes-harness.js';

let harness: NotesHarness;
let app: NotesHarness['app'];
let token: NotesHarness['token'];
let call: NotesHarness['call'];

beforeAll(async () => {
  harness = await notesHarness();
  ({ app, token, call } = harness);
  return () => harness.close();
});

describe('authentication', () => {
  const cases: [string, () => Promise<string | undefined>][] = [
    ['no Authorization header', async () => undefined],
    ['a malformed header', async () => 'Token abc'],
    ['a bad signature', async () => `Bearer ${await token({}, 'x'.repeat(48))}`],
    [
      'alg none',
      async () => {
        const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
        const payload = Buffer.from(
          JSON.stringify({ sub: 'alice', aud: 'notes-api', exp: Math.floor(Date.now() / 1000) + 600 }),
        ).toString('base64url');
        return `Bearer ${header}.${payload}.`;
      },
    ],
    // Past the default 30 s leeway (JWT_CLOCK_SKEW_MS).
    ['an expired token', async () => `Bearer ${await token({ exp: Math.floor(Date.now() / 1000) - 60 })}`],
    ['a token with exp in the year 3000', async () => `Bearer ${await token({ exp: Date.UTC(3000, 0, 1) / 1000 })}`],
    ['a token without exp', async () => `Bearer ${await token({ exp: undefined })}`],
    ['the wrong audience', async () => `Bearer ${await token({ aud: 'another-api' })}`],
    ['a token without sub', async () => `Bearer ${await token({ sub: undefined })}`],
  ];
  for (const [name, authorization] of cases) {
    it(`answers 401 problem+json for ${name}`, async () => {
      const value = await authorization();
      const res = await app.request('/v1/notes', { headers: value ? { authorization: value } : {} });
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect((await res.json()).status).toBe(401);
    });
  }

  it('accepts a token whose iat and nbf are 2 s ahead of this clock', async () => {
    const ahead = Math.floor(Date.now() / 1000) + 2;
    const res = await app.request('/v1/notes', {
      headers: { authorization: `Bearer ${await token({ iat: ahead, nbf: ahead })}` },
    });
    expect(res.status).toBe(200);
  });
});

describe('notes', () => {
  it('creates a note: 201, Location, ETag, server-made id', async () => {
    const res = await call('POST', '/v1/notes', { body: { title: '  Groceries ', body: 'milk' } });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ title: 'Groceries', body: 'milk' });
    expect(res.json.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('location')).toBe(`/v1/notes/${res.json.id}`);
    expect(res.headers.get('etag')).toMatch(/^"v\d+"$/);
    expect(Date.parse(res.json.createdAt)).not.toBeNaN();
  });

  it('lists every invalid field at once, without echoing input', async () => {
    const res = await call('POST', '/v1/notes', { body: { title: '', body: 'x'.repeat(10_001) } });
    expect(res.status).toBe(422);
    expect(res.json.errors.map((e: { field: string }) => e.field).sort()).toEqual(['body', 'title']);
    expect(JSON.stringify(res.json)).not.toContain('xxxxxxxxxx');
    const unknown = await call('POST', '/v1/notes', { body: { title: 'a', owner: 'mallory' } });
    expect(unknown.status).toBe(422);
    expect(unknown.json.errors[0].field).toBe('owner');
    expect((await call('POST', '/v1/notes', { body: '[1,2' })).status).toBe(400);
    expect(
      (
        await call('POST', '/v1/notes', {
          body: 'title=a',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).status,
    ).toBe(415);
  });

  it('refuses with 422, naming the field, text Postgres cannot store: U+0000 and unpaired surrogates', async () => {
    for (const bad of ['a\u0000b', 'a\ud800b', '\udc00', 'x\ud83d']) {
      for (const body of [{ title: bad }, { title: 'ok', body: bad }]) {
        const res = await call('POST', '/v1/notes', { body });
        expect(res.status, JSON.stringify(body)).toBe(422);
        expect(res.json.code).toBe('validation_failed');
        expect(res.json.errors.map((e: { field: string }) => e.field)).toEqual([Object.keys(body).at(-1)]);
      }
    }
    const created = await call('POST', '/v1/notes', { body: { title: 'patch me' } });
    const patched = await call('PATCH', `/v1/notes/${created.json.id}`, { body: { body: 'nul \u0000 here' } });
    expect(patched.status).toBe(422);
    expect(patched.json.errors[0].field).toBe('body');
  });

  it('counts title and body in characters (code points), as the database does', async () => {
    const emoji = '\u{1F600}';
    const title = emoji.repeat(200);
    const created = await call('POST', '/v1/notes', { body: { title, body: emoji.repeat(10_000) } });
    expect(created.status).toBe(201);
    expect(created.json.title).toBe(title);
    const mixed = await call('POST', '/v1/notes', { body: { title: `${'a'.repeat(199)}${emoji}` } });
    expect(mixed.status).toBe(201);
    const tooLong = await call('POST', '/v1/notes', { body: { title: emoji.repeat(201), body: emoji.repeat(10_001) } });
    expect(tooLong.status).toBe(422);
    expect(tooLong.json.errors).toEqual([
      { field: 'title', message: 'title must be at most 200 characters' },
      { field: 'body', message: 'body must be at most 10000 characters' },
    ]);
  });

  it('reads a note with its ETag and answers 304 to If-None-Match', async () => {
    const created = await call('POST', '/v1/notes', { body: { title: 'read me' } });
    const res = await call('GET', `/v1/notes/${created.json.id}`);
    expect(res.status).toBe(200);
    expect(res.json).toEqual(created.json);
    const etag = res.headers.get('etag') as string;
    expect((await call('GET', `/v1/notes/${created.json.id}`, { headers: { 'if-none-match': etag } })).status).toBe(
      304,
    );
  });

  it("answers 404, never 403, for another user's note, an unknown id and a malformed id", async () => {
    const created = await call('POST', '/v1/notes', { body: { title: 'private' } });
    for (const path of [
      `/v1/notes/${created.json.id}`,
      '/v1/notes/00000000-0000-4000-8000-000000000000',
      '/v1/notes/not-an-id',
    ]) {
      const res = await call('GET', path, { user: path.includes(created.json.id) ? 'mallory' : 'alice' });
      expect(res.status).toBe(404);
      expect(res.json.code).toBe('note_not_found');
    }
    expect((await call('DELETE', `/v1/notes/${created.json.id}`, { user: 'mallory' })).status).toBe(404);
    expect(
      (await call('PATCH', `/v1/notes/${created.json.id}`, { user: 'mallory', body: { title: 'x' } })).status,
    ).toBe(404);
  });

  it('updates with If-Match, and answers 412 when the version moved on', async () => {
    const created = await call('POST', '/v1/notes', { body: { title: 'v1' } });
    const etag1 = created.headers.get('etag') as string;
    const updated = await call('PATCH', `/v1/notes/${created.json.id}`, {
      body: { title: 'v2' },
      headers: { 'if-match': etag1 },
    });
    expect(updated.status).toBe(200);
    expect(updated.json).toMatchObject({ title: 'v2', body: '' });
    expect(updated.headers.get('etag')).not.toBe(etag1);
    const stale = await call('PATCH', `/v1/notes/${created.json.id}`, {
      body: { title: 'v3' },
      headers: { 'if-match': etag1 },
    });
    expect(stale.status).toBe(412);
    expect((await call('GET', `/v1/notes/${created.json.id}`)).json.title).toBe('v2');
    expect((await call('PATCH', `/v1/notes/${created.json.id}`, { body: {} })).status).toBe(422);
    expect((await call('PATCH', `/v1/notes/${created.json.id}`, { body: { body: 'no if-match needed' } })).status).toBe(
      200,
    );
  });

  it('deletes: 204, then 404; 412 on a stale If-Match', async () => {
    const created = await call('POST', '/v1/notes', { body: { title: 'bye' } });
    expect((await call('DELETE', `/v1/notes/${created.json.id}`, { headers: { 'if-match': '"v1"' } })).status).toBe(
      412,
    );
    expect((await call('DELETE', `/v1/notes/${created.json.id}`)).status).toBe(204);
    expect((await call('DELETE', `/v1/notes/${created.json.id}`)).status).toBe(404);
  });
});

describe('pagination', () => {
  it('walks every note once with limit and an opaque cursor, even while notes are inserted', async () => {
    const user = `pager-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await call('POST', '/v1/notes', { user, body: { title: `n${i}` } })).json.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await call('GET', `/v1/notes?limit=3${cursor ? `&cursor=${cursor}` : ''}`, { user });
      expect(page.status).toBe(200);
      expect(page.json.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.json.items.map((n: { id: string }) => n.id));
      cursor = page.json.nextCursor;
      // Inserted between pages: newest-first order puts them before page one.
      await call('POST', '/v1/notes', { user, body: { title: `late${pages}` } });
      pages++;
    } while (cursor && pages < 10);
    // Each once, none of the late ones. Not compared in creation order: two notes created within the
    // clock's resolution (PGlite's is coarser) tie on created_at, and the keyset orders ties by id.
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...ids].sort());
  });

  it('rejects a bad limit with 422 and a forged cursor with 400', async () => {
    for (const limit of ['0', '101', 'abc', '-1'])
      expect((await call('GET', `/v1/notes?limit=${limit}`)).status).toBe(422);
    expect((await call('GET', '/v1/notes?cursor=bm90LWEtY3Vyc29y')).status).toBe(400);
    expect((await call('GET', '/v1/notes?cursor=%%%')).status).toBe(400);
  });

  it('answers 400 invalid_cursor for a cursor time beyond what the database can hold', async () => {
    const cursorOf = (value: unknown) =>
      Buffer.from(JSON.stringify([value, '00000000-0000-4000-8000-000000000000'])).toString('base64url');
    // Past 9999-12-31, up to what 20 digits can write and Postgres' timestamp range cannot hold.
    for (const createdUs of ['99999999999999999999', '9999999999999999999', '253402300800000000']) {
      const res = await call('GET', `/v1/notes?cursor=${cursorOf(createdUs)}`);
      expect(res.status, createdUs).toBe(400);
      expect(res.json.code).toBe('invalid_cursor');
    }
    // The last microsecond of 9999 is a time the store could have written: a page, not an error.
    expect((await call('GET', `/v1/notes?cursor=${cursorOf('253402300799999999')}`)).status).toBe(200);
  });
});

describe('Idempotency-Key', () => {
  it('replays the original response for a retry with the same key and body, without a second row', async () => {
    const user = `idem-${Date.now()}`;
    const headers = { 'idempotency-key': 'retry-1' };
    const first = await call('POST', '/v1/notes', { user, body: { title: 'once' }, headers });
    const second = await call('POST', '/v1/notes', { user, body: { title: 'once' }, headers });
    expect(second.status).toBe(201);
    expect(second.json).toEqual(first.json);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(second.headers.get('location')).toBe(first.headers.get('location'));
    expect((await call('GET', '/v1/notes', { user })).json.items).toHaveLength(1);
  });

  it('answers 422 for the same key with a different body', async () => {
    const user = `idem2-${Date.now()}`;
    const headers = { 'idempotency-key': 'retry-2' };
    await call('POST', '/v1/notes', { user, body: { title: 'one' }, headers });
    const other = await call('POST', '/v1/notes', { user, body: { title: 'two' }, headers });
    expect(other.status).toBe(422);
    expect(other.json.code).toBe('idempotency_key_reused');
  });

  it('keeps keys apart per user', async () => {
    const headers = { 'idempotency-key': `shared-${Date.now()}` };
    const a = await call('POST', '/v1/notes', { user: 'ua', body: { title: 'a' }, headers });
    const b = await call('POST', '/v1/notes', { user: 'ub', body: { title: 'b' }, headers });
    expect(a.json.id).not.toBe(b.json.id);
  });

  it('rejects an unsafe key', async () => {
    expect(
      (await call('POST', '/v1/notes', { body: { title: 'a' }, headers: { 'idempotency-key': 'has space' } })).status,
    ).toBe(422);
  });
});
