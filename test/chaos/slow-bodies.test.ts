import { describe, expect, it } from 'vitest';
import { expectNone, expectSurvived, label, send, startBundle, tally, tokenFor, within } from './bundle.js';
import { chaosPostgres, writesNotOnce } from './database.js';
import { campaignRandom } from './random.js';
import { rawClient, rawRequest } from './raw-client.js';

/**
 * Slow uploads without a token: each announces a 100 000-byte body and
 * sends one byte, more of them than MAX_INFLIGHT_REQUESTS allows in flight.
 * While they hang on, a fast client's API requests (and /readyz) must keep
 * succeeding: a cap meant for handlers must not be filled by bodies still
 * on the wire, or a few slow clients refuse everyone else.
 */

const FAST_REQUESTS = 20;

describe('slow uploads past the in-flight cap', () => {
  const postgresFor = chaosPostgres();

  const cases = [
    // The default cap (250, not set here), and the report's case: five slow uploads at a cap of 5.
    { cap: undefined, slow: 300 },
    { cap: '5', slow: 5 },
  ];
  for (const { cap, slow } of cases) {
    it(`leaves a fast client's API requests succeeding while ${slow} slow uploads hang on, at ${cap ? `MAX_INFLIGHT_REQUESTS=${cap}` : 'the default in-flight cap'}`, async () => {
      const random = campaignRandom(`slow-bodies ${cap ?? 'default'}`);
      const db = await (await postgresFor()).database();
      const server = await startBundle({
        DATABASE_URL: db.url,
        // Long enough that the uploads are still arriving while the fast client works.
        READ_TIMEOUT_MS: '30000',
        ...(cap ? { MAX_INFLIGHT_REQUESTS: cap } : {}),
      });
      const token = await tokenFor('chaos-fast');
      const uploads = await Promise.all(
        Array.from({ length: slow }, async () => {
          const client = await rawClient(server.port);
          const request = rawRequest('POST', '/v1/notes', { headers: { 'content-length': '100000' } });
          await client.write(Buffer.concat([request.head, Buffer.from('{')]));
          return client;
        }),
      );
      // One round trip, so the server has read every upload's headers before the fast client starts.
      expect(label(await send(server.port, { path: '/healthz' }))).toBe('200');

      const outcomes: string[] = [];
      const titles: string[] = [];
      for (let i = 0; i < FAST_REQUESTS; i++) {
        const op = random.pick(['GET /', 'list', 'create', 'readyz']);
        const title = `fast-${cap ?? 'default'}-${i}`;
        const outcome =
          op === 'GET /'
            ? await send(server.port, { path: '/' })
            : op === 'list'
              ? await send(server.port, { path: '/v1/notes?limit=5', token })
              : op === 'readyz'
                ? await send(server.port, { path: '/readyz' })
                : await send(server.port, {
                    method: 'POST',
                    path: '/v1/notes',
                    token,
                    body: JSON.stringify({ title }),
                  });
        outcomes.push(`${op}: ${label(outcome)}`);
        if (op === 'create' && outcome.status === 201) titles.push(title);
      }
      const stillOpen = uploads.filter((u) => !u.socket.destroyed && u.status() === undefined).length;
      console.log(
        `slow uploads (${slow}, cap ${cap ?? 'default'}): ${stillOpen} still uploading after the fast client's ` +
          `${FAST_REQUESTS} requests; fast client ${JSON.stringify(tally(outcomes))}`,
      );
      expectNone(
        outcomes.filter((o) => !/: 20[01]$/.test(o)),
        "the fast client's requests that did not succeed",
      );
      // The fault held throughout: no upload was cut or answered while the fast client worked.
      expect(stillOpen, 'slow uploads still arriving').toBe(slow);
      expect(await writesNotOnce(db, titles)).toEqual({});
      for (const upload of uploads) upload.abort('fin');
      await within(Promise.all(uploads.map((u) => u.closed)), 10_000, 'the slow uploads closing');
      await expectSurvived(server, 'after the slow uploads');
    });
  }
});
