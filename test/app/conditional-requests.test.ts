import { beforeAll, describe, expect, it } from 'vitest';
import { parseTagList } from '../../service/app/notes/conditional.js';
import { type NotesHarness, notesHarness } from './notes-harness.js';

// RFC 9110 §13.1.1 (If-Match: strong comparison) and §13.1.2 (If-None-Match:
// weak comparison), each over a list of entity tags or `*`.

let harness: NotesHarness;

beforeAll(async () => {
  harness = await notesHarness();
  return () => harness.close();
});

async function freshNote() {
  const created = await harness.call('POST', '/v1/notes', { body: { title: 'conditional' } });
  return { id: created.json.id as string, etag: created.headers.get('etag') as string };
}

describe('entity-tag lists', () => {
  it('reads weak and strong tags, commas inside quotes included, and skips what is not a tag', () => {
    expect(parseTagList(' W/"a", "b,c" ,"", junk, "d"')).toEqual([
      { weak: true, opaque: '"a"' },
      { weak: false, opaque: '"b,c"' },
      { weak: false, opaque: '""' },
      { weak: false, opaque: '"d"' },
    ]);
    expect(parseTagList(' * ')).toBe('*');
    expect(parseTagList('"unterminated')).toEqual([]);
  });
});

describe('If-None-Match on GET and HEAD', () => {
  it('answers 304 with the ETag for a weak tag, a list holding the tag, and *', async () => {
    const { id, etag } = await freshNote();
    for (const header of [`W/${etag}`, `"x", ${etag}`, `"a,b",W/${etag}`, '*']) {
      for (const method of ['GET', 'HEAD']) {
        const res = await harness.app.request(`/v1/notes/${id}`, {
          method,
          headers: { authorization: `Bearer ${await harness.token()}`, 'if-none-match': header },
        });
        expect(res.status, `${method} ${header}`).toBe(304);
        expect(res.headers.get('etag')).toBe(etag);
      }
    }
  });

  it('answers 200 when no listed tag matches', async () => {
    const { id, etag } = await freshNote();
    for (const header of ['"x"', `"x", "y"`, etag.replace('"v', '"w'), `"${etag}"`]) {
      expect((await harness.call('GET', `/v1/notes/${id}`, { headers: { 'if-none-match': header } })).status).toBe(200);
    }
  });
});

describe('If-Match on PATCH and DELETE', () => {
  it('updates when any listed strong tag is current', async () => {
    const { id, etag } = await freshNote();
    const res = await harness.call('PATCH', `/v1/notes/${id}`, {
      body: { title: 'moved on' },
      headers: { 'if-match': `"x", "v1", ${etag}` },
    });
    expect(res.status).toBe(200);
    expect(res.json.title).toBe('moved on');
  });

  it('answers 412 when no listed tag is current, and for the current tag sent weak', async () => {
    const { id, etag } = await freshNote();
    for (const header of [`W/${etag}`, `"x", W/${etag}`, '"x", "v1"', 'not-a-tag']) {
      const res = await harness.call('PATCH', `/v1/notes/${id}`, {
        body: { title: 'no' },
        headers: { 'if-match': header },
      });
      expect(res.status, header).toBe(412);
    }
    expect((await harness.call('GET', `/v1/notes/${id}`)).json.title).toBe('conditional');
  });

  it('updates any existing note for *, and answers 404 for a missing one', async () => {
    const { id } = await freshNote();
    const headers = { 'if-match': '*' };
    expect((await harness.call('PATCH', `/v1/notes/${id}`, { body: { title: 'any' }, headers })).status).toBe(200);
    const missing = '/v1/notes/00000000-0000-4000-8000-000000000000';
    expect((await harness.call('PATCH', missing, { body: { title: 'any' }, headers })).status).toBe(404);
    expect((await harness.call('DELETE', missing, { headers })).status).toBe(404);
  });

  it('deletes when any listed strong tag is current, and not for a stale list', async () => {
    const { id, etag } = await freshNote();
    expect((await harness.call('DELETE', `/v1/notes/${id}`, { headers: { 'if-match': '"v1", W/"v2"' } })).status).toBe(
      412,
    );
    expect((await harness.call('DELETE', `/v1/notes/${id}`, { headers: { 'if-match': `"v1", ${etag}` } })).status).toBe(
      204,
    );
    expect((await harness.call('GET', `/v1/notes/${id}`)).status).toBe(404);
  });
});
