import { describe, expect, it } from 'vitest';
import { securityHeaders } from '../../src/runtime/security-headers.js';
import { fetchRaw, startFixture } from '../helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('problem responses', () => {
  it('answers an unknown path with a 404 problem carrying the request id', async () => {
    const server = await startFixture();
    const reply = await fetchRaw(server.port, '/nowhere', { headers: { 'x-request-id': 'req-42' } });
    expect(reply.status).toBe(404);
    expect(reply.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(reply.body)).toEqual({
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: 'no route matches this path',
      code: 'not_found',
      requestId: 'req-42',
    });
  });

  it('answers a wrong method with 405 and Allow', async () => {
    const server = await startFixture();
    const reply = await fetchRaw(server.port, '/echo', { method: 'DELETE' });
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe('POST');
    expect(JSON.parse(reply.body)).toMatchObject({ status: 405, code: 'method_not_allowed' });
    const get = await fetchRaw(server.port, '/slow', { method: 'PUT' });
    expect(get.headers.allow).toBe('GET, HEAD');
  });

  it('answers malformed JSON with 400, another media type with 415, invalid fields with 422', async () => {
    const server = await startFixture();
    const json = { 'content-type': 'application/json' };
    const malformed = await fetchRaw(server.port, '/json', { method: 'POST', headers: json, body: '{"name":' });
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.body)).toMatchObject({ code: 'malformed_json' });

    const text = await fetchRaw(server.port, '/json', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(text.status).toBe(415);

    const invalid = await fetchRaw(server.port, '/json', {
      method: 'POST',
      headers: json,
      body: '{"name":"","count":"x"}',
    });
    expect(invalid.status).toBe(422);
    const body = JSON.parse(invalid.body);
    expect(body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['count', 'name']);
    expect(JSON.stringify(body)).not.toContain('"x"');

    const ok = await fetchRaw(server.port, '/json', { method: 'POST', headers: json, body: '{"name":"a","count":2}' });
    expect(JSON.parse(ok.body)).toEqual({ name: 'a', count: 2 });
  });

  it('answers a thrown error with a generic 500 and logs the stack with the request id', async () => {
    const server = await startFixture();
    const reply = await fetchRaw(server.port, '/throw', { headers: { 'x-request-id': 'boom-1' } });
    expect(reply.status).toBe(500);
    expect(JSON.parse(reply.body)).toEqual({
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      detail: 'the server failed to handle this request',
      code: 'internal',
      requestId: 'boom-1',
    });
    expect(reply.body).not.toContain('secret internal detail');
    const logged = await server.waitForLog((l) => l.message === 'unhandled error');
    expect(logged).toMatchObject({
      severity: 'ERROR',
      requestId: 'boom-1',
      error: { message: 'secret internal detail' },
    });
    expect(String(logged.stack_trace)).toContain('secret internal detail');
  });
});

describe('response headers', () => {
  it('echoes a safe X-Request-Id and replaces an unsafe one', async () => {
    const server = await startFixture();
    expect(
      (await fetchRaw(server.port, '/', { headers: { 'x-request-id': 'ok_id-1.2:3' } })).headers['x-request-id'],
    ).toBe('ok_id-1.2:3');
    for (const bad of ['has space', 'x'.repeat(65), 'quote"d', '']) {
      const id = (await fetchRaw(server.port, '/', { headers: { 'x-request-id': bad } })).headers['x-request-id'];
      expect(id).toMatch(UUID);
    }
    expect((await fetchRaw(server.port, '/healthz')).headers['x-request-id']).toMatch(UUID);
  });

  it('sets the security headers on app, health and problem responses, and no X-Powered-By', async () => {
    const server = await startFixture();
    for (const path of ['/', '/healthz', '/readyz', '/nowhere']) {
      const reply = await fetchRaw(server.port, path);
      for (const [name, value] of Object.entries(securityHeaders))
        expect(reply.headers[name], `${name} on ${path}`).toBe(value);
      expect(reply.headers['x-powered-by']).toBeUndefined();
    }
  });
});

describe('handler deadline', () => {
  it('answers 503 when the handler outlives HANDLER_TIMEOUT_MS and aborts its signal', async () => {
    const server = await startFixture({ HANDLER_TIMEOUT_MS: '400' });
    const reply = await fetchRaw(server.port, '/hang');
    expect(reply.status).toBe(503);
    expect(JSON.parse(reply.body)).toMatchObject({ status: 503, code: 'handler_timeout' });
    const aborted = await server.waitForLog((l) => l.message === 'hang request aborted');
    expect(aborted.reason).toBe('HandlerTimeoutError');
    // The connection stays usable for the next request.
    expect((await fetchRaw(server.port, '/')).status).toBe(200);
  });

  it('leaves a handler that finishes in time alone', async () => {
    const server = await startFixture({ HANDLER_TIMEOUT_MS: '2000' });
    expect((await fetchRaw(server.port, '/slow?ms=200')).body).toBe('done');
  });
});
