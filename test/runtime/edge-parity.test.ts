import { request as httpRequest } from 'node:http';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { type CompiledApp, compileApp, type EdgeOptions, type ServerSettings } from '../../src/runtime/edge-options.js';
import { createHealth, type Health } from '../../src/runtime/health.js';
import { problemNotFound, problemOnError } from '../../src/runtime/hono-errors.js';
import { createLoadShedder, type LoadShedder } from '../../src/runtime/load-shedder.js';
import { createLogger } from '../../src/runtime/logger.js';
import { createRateLimiter } from '../../src/runtime/rate-limit.js';
import { signalOf } from '../../src/runtime/request-context.js';
import { securityHeaders } from '../../src/runtime/security-headers.js';
import { createServerAdapter } from '../../src/runtime/server-adapter.js';
import { createWebHandler } from '../../src/runtime/web-server.js';

/**
 * One table of cases, run in-process against both edges: node-server.ts over
 * a real socket, and web-server.ts (what bun-server.ts and deno-server.ts
 * hand their Requests to) called with a Request. Each case asserts what it
 * must answer, and that both edges answer it with the same status, body and
 * headers, so the next drift between the edges fails here. The contract
 * suite (test/runtimes/contract.test.ts) runs the real Bun and Deno.
 */

const LIMIT = 1_000;

const settings: ServerSettings = {
  port: 0,
  host: '127.0.0.1',
  readHeaderTimeoutMs: 5_000,
  readTimeoutMs: 10_000,
  writeTimeoutMs: 10_000,
  writeMinRateBps: 240,
  idleTimeoutMs: 5_000,
  handlerTimeoutMs: 10_000,
  bodyLimitBytes: LIMIT,
  maxBufferedBodyBytes: 0,
  trust: { kind: 'none' },
  logHealthChecks: false,
  projectId: undefined,
};

/** A request as it goes on the wire; `body` says how its body is sent. */
interface Sent {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?:
    | { text: string }
    /** Announced with Content-Length, never sent. */
    | { declared: number }
    /** Sent chunked, with no Content-Length, then ended. */
    | { chunked: number }
    /** Content-Length `declared`, `sent` bytes of it, then nothing more. */
    | { declared: number; sent: number };
}

interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  body: unknown;
}

/** What a case sets up: the edge's settings and state, and what the app does. */
interface Scenario {
  settings?: Partial<ServerSettings>;
  app?: 'ready' | 'loading' | 'failed';
  health?: 'started' | 'starting' | 'draining';
  shedder?: (log: ReturnType<typeof createLogger>) => LoadShedder;
  rateLimit?: { rps: number; burst: number };
  /** Sent first and held by the app while the case's request is answered. */
  hold?: boolean;
  /** Sent first and answered before the case's request. */
  before?: Sent;
}

interface Case {
  name: string;
  scenario?: Scenario;
  send: Sent;
  expect: { status: number; code?: string; headers?: Record<string, string> };
}

// The headers compared: what the policies set. Node's own `connection: keep-alive` and `date` are not ours.
const compared = [
  ...Object.keys(securityHeaders),
  'content-type',
  'cache-control',
  'x-request-id',
  'retry-after',
  'allow',
  'ratelimit',
  'ratelimit-policy',
  'connection',
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A fixed-verdict shedder: the event-loop delay is an input to the edge, and cannot be made exact in a test. */
const overloadedLoop = (): LoadShedder => ({
  check: () => 'event_loop_delay',
  count: () => {},
  overloaded: true,
  start: () => {},
  stop: () => {},
});

// What the /own-headers route sets of the runtime's own headers (testApp).
const appsOwnHeaders = {
  'strict-transport-security': 'max-age=63072000; includeSubDomains; preload',
  'x-frame-options': 'DENY',
  'x-request-id': 'from-the-app',
};

const cases: Case[] = [
  { name: 'liveness', send: { path: '/healthz' }, expect: { status: 200 } },
  { name: 'readiness when started', send: { path: '/readyz' }, expect: { status: 200 } },
  {
    name: 'readiness during start-up',
    scenario: { health: 'starting', app: 'loading' },
    send: { path: '/readyz' },
    expect: { status: 503 },
  },
  {
    name: 'readiness while draining',
    scenario: { health: 'draining' },
    send: { path: '/readyz?probe=lb' },
    expect: { status: 503 },
  },
  {
    name: 'liveness while draining',
    scenario: { health: 'draining' },
    send: { path: '/healthz' },
    expect: { status: 200 },
  },
  { name: 'HEAD liveness', send: { method: 'HEAD', path: '/healthz' }, expect: { status: 200 } },
  { name: 'an app route', send: { path: '/' }, expect: { status: 200 } },
  {
    name: 'an app route while the app loads, past the handler deadline',
    scenario: { app: 'loading', settings: { handlerTimeoutMs: 300 } },
    send: { path: '/' },
    expect: { status: 503, code: 'not_started', headers: { 'retry-after': '1' } },
  },
  {
    name: 'an app route after the app failed to load',
    scenario: { app: 'failed' },
    send: { path: '/' },
    expect: { status: 503, code: 'not_started' },
  },
  { name: 'no route', send: { path: '/nowhere' }, expect: { status: 404, code: 'not_found' } },
  {
    name: 'a method the route does not serve',
    send: { method: 'DELETE', path: '/' },
    expect: { status: 405, code: 'method_not_allowed', headers: { allow: 'GET, HEAD' } },
  },
  {
    name: 'the handler deadline',
    scenario: { settings: { handlerTimeoutMs: 300 } },
    send: { path: '/hang' },
    expect: { status: 503, code: 'handler_timeout' },
  },
  {
    name: "a route's own handler deadline",
    send: { path: '/hang-short' },
    expect: { status: 503, code: 'handler_timeout' },
  },
  {
    name: "a declared body over a route's own limit",
    send: { method: 'POST', path: '/echo-small', body: { declared: 11 } },
    expect: { status: 413, code: 'body_too_large', headers: { connection: 'close' } },
  },
  {
    name: "a chunked body over a route's own limit",
    send: { method: 'POST', path: '/echo-small?x=1', body: { chunked: 20 } },
    expect: { status: 413, code: 'body_too_large', headers: { connection: 'close' } },
  },
  {
    name: 'an app that throws',
    send: { path: '/throw' },
    expect: { status: 500, code: 'internal' },
  },
  {
    name: 'a body within the limit',
    send: { method: 'POST', path: '/echo', headers: { 'content-type': 'text/plain' }, body: { text: 'hello' } },
    expect: { status: 200 },
  },
  {
    name: 'a declared body over the limit',
    send: { method: 'POST', path: '/echo', body: { declared: LIMIT + 1 } },
    expect: { status: 413, code: 'body_too_large', headers: { connection: 'close' } },
  },
  {
    name: 'a chunked body over the limit',
    send: { method: 'POST', path: '/echo', body: { chunked: LIMIT + 200 } },
    expect: { status: 413, code: 'body_too_large', headers: { connection: 'close' } },
  },
  {
    name: 'a body that stops arriving, at the read timeout',
    scenario: { settings: { readHeaderTimeoutMs: 300, readTimeoutMs: 300 } },
    send: { method: 'POST', path: '/echo', body: { declared: 100, sent: 10 } },
    expect: { status: 408, code: 'request_timeout' },
  },
  {
    name: 'the rate limit',
    scenario: { rateLimit: { rps: 1, burst: 1 }, before: { path: '/' } },
    send: { path: '/' },
    expect: { status: 429, code: 'rate_limited', headers: { 'retry-after': '1' } },
  },
  {
    name: 'the rate limit fields on an admitted request',
    scenario: { rateLimit: { rps: 1, burst: 5 } },
    send: { path: '/' },
    expect: { status: 200 },
  },
  {
    name: 'the in-flight cap',
    scenario: { shedder: (log) => createLoadShedder({ maxInFlight: 1, maxEventLoopDelayMs: 0, log }), hold: true },
    send: { path: '/' },
    expect: { status: 503, code: 'overloaded', headers: { 'retry-after': '1' } },
  },
  {
    name: 'the in-flight cap, for a request that announced a body',
    scenario: { shedder: (log) => createLoadShedder({ maxInFlight: 1, maxEventLoopDelayMs: 0, log }), hold: true },
    send: { method: 'POST', path: '/echo', body: { declared: 100 } },
    expect: { status: 503, code: 'overloaded', headers: { connection: 'close' } },
  },
  {
    name: 'the event-loop delay',
    scenario: { shedder: overloadedLoop },
    send: { path: '/' },
    expect: { status: 503, code: 'overloaded' },
  },
  {
    // It could never be held: too large, whatever the route's limit (MAX_BUFFERED_BODY_BYTES).
    name: 'a body larger than all the memory for bodies',
    scenario: { settings: { maxBufferedBodyBytes: 50 } },
    send: { method: 'POST', path: '/echo', body: { declared: 100 } },
    expect: { status: 413, code: 'body_too_large', headers: { connection: 'close' } },
  },
  {
    name: 'a request id that is echoed',
    send: { path: '/', headers: { 'x-request-id': 'parity-1.a_b' } },
    expect: { status: 200, headers: { 'x-request-id': 'parity-1.a_b' } },
  },
  {
    name: "an answer that sets some of the runtime's headers: its values, each sent once",
    send: { path: '/own-headers' },
    expect: { status: 200, headers: appsOwnHeaders },
  },
  {
    name: "the same under the rate limit: its values, and the limit's fields",
    scenario: { rateLimit: { rps: 100, burst: 100 } },
    send: { path: '/own-headers' },
    expect: { status: 200, headers: { ...appsOwnHeaders, 'ratelimit-policy': '"per-client";q=100;w=1' } },
  },
  {
    name: 'a request id that is replaced',
    send: { path: '/nowhere', headers: { 'x-request-id': 'no spaces allowed' } },
    expect: { status: 404, code: 'not_found' },
  },
];

/** The app both edges serve: a Hono app with the runtime's error handlers. */
function testApp(onHold: () => void, held: Promise<void>) {
  const log = createLogger({ level: 'error', write: () => {} });
  const app = new Hono();
  app.onError(problemOnError(log));
  app.notFound(problemNotFound(app));
  app.get('/', (c) => c.text('hello'));
  app.get('/hold', async (c) => {
    onHold();
    await held;
    return c.text('held');
  });
  for (const path of ['/hang', '/hang-short']) {
    app.get(path, async (c) => {
      const signal = signalOf(c);
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      return c.text('late');
    });
  }
  // An answer that sets some of the runtime's own headers: a stricter policy, its own request id.
  app.get('/own-headers', (c) =>
    c.text('own', 200, {
      'Strict-Transport-Security': 'max-age=63072000; includeSubDomains; preload',
      'x-frame-options': 'DENY',
      'X-Request-Id': 'from-the-app',
    }),
  );
  app.get('/throw', () => {
    throw new Error('the handler failed');
  });
  // The -short and -small routes differ only in their route settings (build()).
  for (const path of ['/echo', '/echo-small']) {
    app.post(path, async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
  }
  return app;
}

interface Edge {
  send(sent: Sent): Promise<Answer>;
}

interface Built {
  edge: Edge;
  /** Resolves when the held request is in the app. */
  holding: Promise<void>;
  release(): void;
  close(): Promise<void>;
}

type EdgeKind = 'node' | 'web';

async function build(kind: EdgeKind, scenario: Scenario): Promise<Built> {
  const log = createLogger({ level: 'error', write: () => {} });
  const health: Health = createHealth({ log });
  if (scenario.health !== 'starting') health.markStarted();
  if (scenario.health === 'draining') health.markDraining();
  const shedder = scenario.shedder?.(log);
  const rateLimiter = scenario.rateLimit && createRateLimiter(scenario.rateLimit);
  const options: EdgeOptions = { ...settings, ...scenario.settings, health, log, shedder, rateLimiter };
  let onHold = () => {};
  const holding = new Promise<void>((resolve) => {
    onHold = resolve;
  });
  let release = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const hono = testApp(onHold, held);
  const served = compileApp({
    fetch: hono.fetch,
    routeSettings: [
      { method: 'POST', path: '/echo-small', bodyLimitBytes: 10 },
      { method: 'GET', path: '/hang-short', handlerTimeoutMs: 200 },
    ],
  });
  const app: Promise<CompiledApp> =
    scenario.app === 'loading'
      ? new Promise<CompiledApp>(() => {})
      : scenario.app === 'failed'
        ? Promise.reject(new Error('the app failed to load'))
        : Promise.resolve(served);
  app.catch(() => {});
  const stop = async (drainable: { stopAccepting(): void; forceClose(reason: Error): Promise<unknown> }) => {
    release();
    rateLimiter?.stop();
    shedder?.stop();
    drainable.stopAccepting();
    await drainable.forceClose(new Error('the test ended'));
  };

  if (kind === 'node') {
    const adapter = await createServerAdapter(options);
    const { port } = await adapter.listen(new AbortController().signal);
    adapter.serve(app);
    return { edge: { send: (sent) => overSocket(port, sent) }, holding, release, close: () => stop(adapter) };
  }
  const handler = createWebHandler(options);
  handler.setApp(app);
  return {
    edge: {
      send: (sent) => handler.handle(requestOf(sent), '127.0.0.1').then((response) => answerOf(response as Response)),
    },
    holding,
    release,
    close: () => stop(handler),
  };
}

/** The request over a real socket to the node edge, as a client writes it. */
function overSocket(port: number, sent: Sent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { connection: 'keep-alive', ...sent.headers };
    const body = sent.body;
    if (body && 'declared' in body) headers['content-length'] = String(body.declared);
    if (body && 'text' in body) headers['content-length'] = String(Buffer.byteLength(body.text));
    const req = httpRequest(
      { host: '127.0.0.1', port, path: sent.path, method: sent.method ?? 'GET', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          req.destroy();
          const picked: Record<string, string | undefined> = {};
          for (const name of compared) {
            const value = res.headers[name];
            picked[name] = Array.isArray(value) ? value.join(', ') : value;
          }
          resolve(normalize(res.statusCode ?? 0, picked, Buffer.concat(chunks).toString('utf8')));
        });
      },
    );
    // The answer may come before the body is all sent: what is left is not ours to finish.
    req.on('error', () => {});
    if (!body) return void req.end();
    if ('text' in body) return void req.end(body.text);
    if ('chunked' in body) return void req.end(Buffer.alloc(body.chunked, 'a'));
    if ('sent' in body) return void req.write(Buffer.alloc(body.sent, 'a'));
    req.flushHeaders();
  });
}

/** The same request as the Bun and Deno adapters hand it to the web edge. */
function requestOf(sent: Sent): Request {
  const headers = new Headers(sent.headers);
  const body = sent.body;
  const init: RequestInit & { duplex?: 'half' } = { method: sent.method ?? 'GET', headers };
  if (body && 'text' in body) init.body = body.text;
  if (body && 'declared' in body) {
    headers.set('content-length', String(body.declared));
    const part = 'sent' in body ? body.sent : 0;
    init.body = new ReadableStream<Uint8Array>({
      start(controller) {
        if (part > 0) controller.enqueue(new Uint8Array(part).fill(97));
      },
    });
    init.duplex = 'half';
  }
  if (body && 'chunked' in body) {
    init.body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(body.chunked).fill(97));
        controller.close();
      },
    });
    init.duplex = 'half';
  }
  return new Request(`http://127.0.0.1${sent.path}`, init);
}

async function answerOf(response: Response): Promise<Answer> {
  const picked: Record<string, string | undefined> = {};
  for (const name of compared) picked[name] = response.headers.get(name) ?? undefined;
  return normalize(response.status, picked, await response.text());
}

/**
 * Comparable answers: node's own `Connection: keep-alive` is the default
 * either way; a generated request id differs per request, so it is checked
 * (a UUID, the same in the header and the body) and then named.
 */
function normalize(status: number, headers: Record<string, string | undefined>, text: string): Answer {
  if (headers.connection !== 'close') headers.connection = undefined;
  // `new Response('text')` types itself: `text/plain;charset=UTF-8` from undici, with a space from
  // @hono/node-server's Response. The runtime's spelling, not a policy of ours.
  headers['content-type'] = headers['content-type']?.replace(/;\s*/g, '; ');
  let body: unknown = text;
  if (headers['content-type']?.includes('json') && text !== '') body = JSON.parse(text);
  const id = headers['x-request-id'];
  if (id && UUID.test(id)) {
    headers['x-request-id'] = '<generated>';
    if (body && typeof body === 'object' && (body as { requestId?: string }).requestId === id) {
      (body as { requestId?: string }).requestId = '<generated>';
    }
  }
  return { status, headers, body };
}

const built: Built[] = [];
afterEach(async () => {
  await Promise.all(built.splice(0).map((b) => b.close()));
});

async function answerOn(kind: EdgeKind, { scenario = {}, send }: Case): Promise<Answer> {
  const b = await build(kind, scenario);
  built.push(b);
  if (scenario.before) await b.edge.send(scenario.before);
  if (scenario.hold) {
    void b.edge.send({ path: '/hold' }).catch(() => {});
    await b.holding;
  }
  const answer = await b.edge.send(send);
  b.release();
  return answer;
}

describe('the node edge and the web edge answer alike', () => {
  it.each(cases)('$name', async (c) => {
    const [node, web] = await Promise.all([answerOn('node', c), answerOn('web', c)]);
    expect(node, 'the node edge and the web edge differ').toEqual(web);
    expect(node.status).toBe(c.expect.status);
    if (c.expect.code) {
      expect(node.headers['content-type']).toBe('application/problem+json');
      expect(node.body).toMatchObject({ code: c.expect.code, status: c.expect.status });
      // Every problem names its request.
      expect((node.body as { requestId?: string }).requestId).toBe(node.headers['x-request-id']);
    }
    for (const [name, value] of Object.entries(c.expect.headers ?? {})) expect(node.headers[name]).toBe(value);
    for (const [name, value] of Object.entries(securityHeaders))
      if (!c.expect.headers?.[name]) expect(node.headers[name]).toBe(value);
    expect(node.headers['x-request-id']).toBeDefined();
  });
});
