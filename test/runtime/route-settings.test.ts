import { describe, expect, it } from 'vitest';
import { absoluteUrl, compileRouteSettings, RouteSettingsError } from '../../src/runtime/route-settings.js';
import { fetchRaw, fixtureProgram, rawConnect, startFixture } from '../helpers.js';

/** A route's own body limit, handler deadline and write timeout (src/runtime/route-settings.ts). */

describe('route settings, as the app declares them', () => {
  it('finds the first entry that matches the method and the path, query string aside', () => {
    const limitsFor = compileRouteSettings([
      { method: 'GET', path: '/v1/notes/events', handlerTimeoutMs: 1_000 },
      { path: '/v1/notes/:id', bodyLimitBytes: 10 },
      { path: '/v1/*', handlerTimeoutMs: 5_000 },
    ]);
    const at = (path: string) => `http://h${path}`;
    expect(limitsFor?.('GET', at('/v1/notes/events?after=3'))).toEqual({ handlerTimeoutMs: 1_000 });
    expect(limitsFor?.('PATCH', at('/v1/notes/abc'))).toEqual({ bodyLimitBytes: 10 });
    expect(limitsFor?.('POST', at('/v1/notes/events'))).toEqual({ bodyLimitBytes: 10 });
    expect(limitsFor?.('GET', at('/v1/other'))).toEqual({ handlerTimeoutMs: 5_000 });
    expect(limitsFor?.('GET', at('/elsewhere'))).toBeUndefined();
  });

  it('matches the path the app routes on: percent-encoded, absolute-form, and HEAD as GET', () => {
    const limitsFor = compileRouteSettings([
      { method: 'POST', path: '/small', bodyLimitBytes: 100 },
      { method: 'GET', path: '/slow', handlerTimeoutMs: 1_500 },
    ]);
    expect(limitsFor?.('POST', absoluteUrl('/%73mall'))).toEqual({ bodyLimitBytes: 100 });
    expect(limitsFor?.('POST', absoluteUrl('http://x/small'))).toEqual({ bodyLimitBytes: 100 });
    expect(limitsFor?.('HEAD', absoluteUrl('/slow'))).toEqual({ handlerTimeoutMs: 1_500 });
    expect(limitsFor?.('GET', absoluteUrl('/%73low?x=1'))).toEqual({ handlerTimeoutMs: 1_500 });
  });

  it('is nothing to look up when there are none', () => {
    expect(compileRouteSettings([])).toBeUndefined();
  });

  it('lists every mistake, naming the entry and the setting', () => {
    let error: unknown;
    try {
      compileRouteSettings([
        { path: 'no-slash' },
        { path: '/a', handlerTimeoutMs: 0, writeMinRateBps: 1.5 },
        { method: 'FETCH', path: '/b', bodyLimit: 5 },
        { path: '/a/:id{[}' },
      ]);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RouteSettingsError);
    expect((error as RouteSettingsError).problems).toEqual([
      'routeSettings[0].path: expected a path pattern starting with /',
      'routeSettings[1].handlerTimeoutMs: expected a whole number from 1 to 3600000',
      'routeSettings[1].writeMinRateBps: expected a whole number from 0 to 1073741824',
      'routeSettings[2].method: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
      expect.stringMatching(/^routeSettings\[2\]\.bodyLimit: /),
      'routeSettings[3].path: expected a Hono path pattern (one the router accepts)',
    ]);
  });
});

describe('route settings on a real server', () => {
  it('answers a route past its own handler deadline with 503, before the server-wide one', async () => {
    const server = await startFixture({ HANDLER_TIMEOUT_MS: '20000' });
    const reply = await fetchRaw(server.port, '/hang-long');
    expect(reply.status).toBe(503);
    expect(JSON.parse(reply.body)).toMatchObject({
      code: 'handler_timeout',
      detail: 'the request did not complete within 1500 ms',
    });
  });

  it("cuts a client that stopped reading at its route's own write timeout", async () => {
    const server = await startFixture({ WRITE_TIMEOUT_MS: '1000' });
    const conn = await rawConnect(server.port);
    conn.socket.pause();
    conn.socket.write('GET /big-slow?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n');
    const cut = await server.waitForLog((line) => line.message === 'write timeout, closing connection');
    expect(cut).toMatchObject({ verdict: 'stalled', writeTimeoutMs: 5000, writeMinRateBps: 0 });
  });

  it('refuses to start an app whose route settings are wrong, listing each mistake, and exits 1', async () => {
    const server = await startFixture({}, 'listening', { program: fixtureProgram('bad-route-settings') });
    const fatal = await server.waitForLog((line) => line.message === 'fatal error');
    expect((fatal.error as { message: string }).message).toMatch(
      /^invalid route settings: routeSettings\[3\]\.path: expected a path pattern starting with \/; routeSettings\[3\]\.handlerTimeoutMs: .*; routeSettings\[3\]\.bodyLimit: /,
    );
    expect((await server.exited).code).toBe(1);
  });
});
