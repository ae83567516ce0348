import { describe, expect, it } from 'vitest';
import { fetchRaw, type LogLine, rawConnect, startFixture } from '../helpers.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

function accessLines(logs: LogLine[]) {
  return logs.filter((line) => line.message === 'request');
}

describe('access log', () => {
  it('writes one JSON line per request in the Cloud Logging httpRequest shape', async () => {
    const server = await startFixture();
    await fetchRaw(server.port, '/big?mb=1', {
      headers: { 'user-agent': 'runway-test/1.0', 'x-request-id': 'abc-123' },
    });
    const line = await server.waitForLog((l) => l.message === 'request');
    expect(line).toMatchObject({
      severity: 'INFO',
      message: 'request',
      requestId: 'abc-123',
      httpRequest: {
        requestMethod: 'GET',
        requestUrl: '/big?mb=1',
        status: 200,
        responseSize: String(1024 * 1024),
        userAgent: 'runway-test/1.0',
        remoteIp: '127.0.0.1',
        protocol: 'HTTP/1.1',
      },
    });
    expect(typeof line.time).toBe('string');
    expect(Number.isNaN(Date.parse(line.time as string))).toBe(false);
    expect((line.httpRequest as { latency: string }).latency).toMatch(/^\d+\.\d{3}s$/);
    expect(accessLines(server.logs)).toHaveLength(1);
    expect(server.logs.filter((l) => l.severity === 'NOT_JSON')).toEqual([]);
  });

  it('builds the trace field from traceparent when the project id is known', async () => {
    const server = await startFixture({ GOOGLE_CLOUD_PROJECT: 'my-project' });
    await fetchRaw(server.port, '/', { headers: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` } });
    const line = await server.waitForLog((l) => l.message === 'request');
    expect(line['logging.googleapis.com/trace']).toBe(`projects/my-project/traces/${TRACE_ID}`);
    expect(line['logging.googleapis.com/spanId']).toBe('00f067aa0ba902b7');
    expect(line['logging.googleapis.com/trace_sampled']).toBe(true);
  });

  it('builds the trace field from X-Cloud-Trace-Context too', async () => {
    const server = await startFixture({ GOOGLE_CLOUD_PROJECT: 'my-project' });
    await fetchRaw(server.port, '/', { headers: { 'x-cloud-trace-context': `${TRACE_ID}/1;o=1` } });
    const line = await server.waitForLog((l) => l.message === 'request');
    expect(line['logging.googleapis.com/trace']).toBe(`projects/my-project/traces/${TRACE_ID}`);
    expect(line['logging.googleapis.com/spanId']).toBe('0000000000000001');
  });

  it('adds no trace field without a project id, or for a malformed traceparent', async () => {
    const server = await startFixture({ GOOGLE_CLOUD_PROJECT: 'my-project' });
    await fetchRaw(server.port, '/', { headers: { traceparent: 'garbage' } });
    const line = await server.waitForLog((l) => l.message === 'request');
    expect(line['logging.googleapis.com/trace']).toBeUndefined();
    const noProject = await startFixture();
    await fetchRaw(noProject.port, '/', { headers: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` } });
    const other = await noProject.waitForLog((l) => l.message === 'request');
    expect(other['logging.googleapis.com/trace']).toBeUndefined();
  });

  it('leaves health probes out unless LOG_HEALTH_CHECKS=true', async () => {
    const quiet = await startFixture();
    await fetchRaw(quiet.port, '/healthz');
    await fetchRaw(quiet.port, '/readyz');
    await fetchRaw(quiet.port, '/');
    await quiet.waitForLog((l) => l.message === 'request');
    expect(accessLines(quiet.logs).map((l) => (l.httpRequest as { requestUrl: string }).requestUrl)).toEqual(['/']);

    const chatty = await startFixture({ LOG_HEALTH_CHECKS: 'true' });
    await fetchRaw(chatty.port, '/healthz');
    const line = await chatty.waitForLog((l) => l.message === 'request');
    expect((line.httpRequest as { requestUrl: string }).requestUrl).toBe('/healthz');
  });

  it('filters by LOG_LEVEL', async () => {
    const server = await startFixture({ LOG_LEVEL: 'warn' }, 'none');
    await fetchRaw(server.port, '/');
    await fetchRaw(server.port, '/nowhere');
    const warn = await server.waitForLog((l) => l.message === 'request');
    expect(warn.severity).toBe('WARNING');
    expect(accessLines(server.logs)).toHaveLength(1);
    expect(server.logs.some((l) => l.severity === 'INFO')).toBe(false);
  });

  it('never writes Authorization or Cookie values, nor the body', async () => {
    const server = await startFixture();
    await fetchRaw(server.port, '/echo', {
      method: 'POST',
      headers: { authorization: 'Bearer sekret-token-value', cookie: 'session=sekret-cookie-value' },
      body: 'sekret-body-value',
    });
    await server.waitForLog((l) => l.message === 'request');
    const everything = JSON.stringify(server.logs);
    expect(everything).not.toContain('sekret');
  });

  it('logs a client that went away as status 499', async () => {
    const server = await startFixture();
    const conn = await rawConnect(server.port);
    conn.socket.write('GET /hang HTTP/1.1\r\nHost: x\r\nX-Request-Id: gone-1\r\n\r\n');
    // The app's own lines carry the request id too (loggerOf).
    const started = await server.waitForLog((l) => l.message === 'hang request started');
    expect(started).toMatchObject({ requestId: 'gone-1', requestIdSeen: 'gone-1' });
    conn.socket.destroy();
    await server.waitForLog((l) => l.message === 'request');
    const lines = accessLines(server.logs);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.httpRequest).toMatchObject({ status: 499, remoteIp: '127.0.0.1' });
    expect(lines[0]).toMatchObject({ severity: 'INFO', outcome: 'ClientGoneError' });
  });

  it('logs a handler timeout once, at WARNING, with its outcome', async () => {
    const server = await startFixture({ HANDLER_TIMEOUT_MS: '300' });
    const reply = await fetchRaw(server.port, '/hang', { headers: { 'x-request-id': 'late-1' } });
    expect(reply.status).toBe(503);
    await server.waitForLog((l) => l.message === 'request');
    const lines = accessLines(server.logs);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ severity: 'WARNING', requestId: 'late-1', outcome: 'HandlerTimeoutError' });
    expect(lines[0]?.httpRequest).toMatchObject({ status: 503 });
    expect(server.logs.filter((l) => l.severity === 'ERROR')).toEqual([]);
  });
});
