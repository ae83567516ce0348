import { Hono } from 'hono';
import { sign } from 'hono/jwt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type AuthOptions, bearerAuth } from '../../service/app/auth.js';
import { createApp } from '../../service/app/create-app.js';
import type { Env } from '../../service/app/env.js';
import { poolFor } from '../../src/db/open-database.js';
import { problemOnError } from '../../src/runtime/hono-errors.js';
import { createLogger } from '../../src/runtime/logger.js';
import { notesEnv } from './notes-env.js';
import { KEY } from './notes-harness.js';

// The time claims of bearer tokens, against bearerAuth itself; margins are
// whole seconds past each bound, so the test's clock and the middleware's agree.

const log = createLogger({ level: 'error' });
const DAY = 86_400;
const YEAR_3000 = Date.UTC(3000, 0, 1) / 1000;
const now = () => Math.floor(Date.now() / 1000);

function guarded(options: Partial<AuthOptions> = {}) {
  const app = new Hono<Env>();
  app.onError(problemOnError(log));
  app.use(bearerAuth({ signingKey: KEY, clockSkewMs: 30_000, maxLifetimeMs: DAY * 1000, ...options }));
  app.get('/', (c) => c.json({ userId: c.get('userId') }));
  return app;
}

type Requester = { request(path: string, init: RequestInit): Response | Promise<Response> };

async function answer(app: Requester, claims: Record<string, unknown>, path = '/') {
  const token = await sign({ sub: 'alice', aud: 'notes-api', ...claims }, KEY, 'HS256');
  const res = await app.request(path, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.json() };
}

describe('bearer token time claims', () => {
  const app = guarded();

  it('accepts a token whose iat and nbf are 2 s ahead of this clock', async () => {
    const ahead = now() + 2;
    const res = await answer(app, { iat: ahead, nbf: ahead, exp: ahead + 600 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ userId: 'alice' });
  });

  it('refuses a token issued further ahead than the leeway, with a Bearer challenge', async () => {
    const res = await answer(app, { iat: now() + 40, exp: now() + 600 });
    expect(res.status).toBe(401);
    expect(res.challenge).toMatch(/^Bearer/);
    expect(res.body.code).toBe('token_invalid');
  });

  it('refuses a token whose nbf is further ahead than the leeway', async () => {
    expect((await answer(app, { iat: now(), nbf: now() + 40, exp: now() + 600 })).status).toBe(401);
  });

  it('accepts a token that expired within the leeway, and refuses one that expired before it', async () => {
    expect((await answer(app, { iat: now() - 600, exp: now() - 5 })).status).toBe(200);
    const expired = await answer(app, { iat: now() - 600, exp: now() - 40 });
    expect(expired.status).toBe(401);
    expect(expired.body.code).toBe('token_expired');
  });

  it('refuses a token 2 s ahead when the leeway is 0', async () => {
    const strict = guarded({ clockSkewMs: 0 });
    expect((await answer(strict, { iat: now() + 2, exp: now() + 600 })).status).toBe(401);
    expect((await answer(strict, { nbf: now() + 2, exp: now() + 600 })).status).toBe(401);
  });

  it('refuses a token whose exp - iat exceeds the maximum lifetime, and accepts one at it', async () => {
    const issued = now() - 60;
    expect((await answer(app, { iat: issued, exp: issued + DAY + 5 })).status).toBe(401);
    expect((await answer(app, { iat: issued, exp: issued + DAY })).status).toBe(200);
  });

  it('refuses exp in the year 3000, with or without iat', async () => {
    expect((await answer(app, { exp: YEAR_3000 })).status).toBe(401);
    expect((await answer(app, { iat: now(), exp: YEAR_3000 })).status).toBe(401);
  });

  it('measures a token without iat from now, allowing the leeway', async () => {
    expect((await answer(app, { exp: now() + DAY + 10 })).status).toBe(200);
    expect((await answer(app, { exp: now() + DAY + 60 })).status).toBe(401);
  });

  it('refuses time claims that are not numbers', async () => {
    for (const claims of [
      { exp: String(now() + 600) },
      { exp: now() + 600, iat: 'today' },
      { exp: now() + 600, nbf: null },
    ])
      expect((await answer(app, claims)).status, JSON.stringify(claims)).toBe(401);
  });

  it('refuses a sub that Postgres cannot store', async () => {
    for (const sub of ['a\u0000b', 'a\ud800b'])
      expect((await answer(app, { sub, exp: now() + 600 })).status, JSON.stringify(sub)).toBe(401);
  });
});

describe('bearer token settings', () => {
  it('takes the leeway and the lifetime from JWT_CLOCK_SKEW_MS and JWT_MAX_LIFETIME_MS', async () => {
    const url = 'postgres://postgres@127.0.0.1:1/never';
    const env = notesEnv({
      DATABASE_URL: url,
      JWT_SIGNING_KEY: KEY,
      JWT_CLOCK_SKEW_MS: '0',
      JWT_MAX_LIFETIME_MS: '60000',
    });
    // Never connected: a malformed id is answered (404) after authentication, before any query.
    const db = poolFor(env, log, url);
    onTestFinished(() => db.end(1_000));
    const app = createApp({ env, log, db });
    const path = '/v1/notes/not-an-id';
    expect((await answer(app, { iat: now(), exp: now() + 30 }, path)).status).toBe(404);
    expect((await answer(app, { iat: now() + 2, exp: now() + 30 }, path)).status).toBe(401);
    expect((await answer(app, { iat: now(), exp: now() + 120 }, path)).status).toBe(401);
  });
});
