import { describe, expect, it } from 'vitest';
import { env as notesParts } from '../service/env.js';
import { partsOf } from '../src/config/env-part.js';
import { ConfigError, composeEnv, loadEnv } from '../src/config/load.js';

// The notes service's composition: the runtime's variables, runway/postgres's (required in production) and its own.
const composed = composeEnv(partsOf(notesParts));
const load = (raw: Record<string, string | undefined>) => loadEnv<Record<string, unknown>>(raw, composed);
const loadConfig = (raw: Record<string, string | undefined>) => load(raw).config;

function problemsOf(env: Record<string, string>): string[] {
  try {
    load(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      platform: 'other',
      logLevel: 'info',
      server: {
        port: 8080,
        host: undefined,
        readHeaderTimeoutMs: 5_000,
        readTimeoutMs: 15_000,
        writeTimeoutMs: 30_000,
        idleTimeoutMs: 120_000,
        bodyLimitBytes: 1_048_576,
        maxBufferedBodyBytes: 134_217_728,
      },
      shutdown: { gracefulTimeoutMs: 10_000, shutdownDelayMs: 0, cleanupTimeoutMs: 1_000, terminationGraceMs: 30_000 },
    });
    expect(load({}).env.DATABASE_URL).toBeUndefined();
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '', LOG_LEVEL: '' }).server.port).toBe(8080);
  });

  it('reports every invalid variable at once, naming each with what was expected and given', () => {
    const problems = problemsOf({ PORT: 'eighty', LOG_LEVEL: 'loud', READ_TIMEOUT_MS: '-5', BODY_LIMIT_BYTES: '1.5' });
    expect(problems).toHaveLength(4);
    expect(problems).toContain('PORT: expected a whole number from 0 to 65535, got "eighty"');
    expect(problems).toContain('LOG_LEVEL: expected one of debug, info, warn, error, got "loud"');
    expect(problems.find((p) => p.startsWith('READ_TIMEOUT_MS:'))).toContain('got "-5"');
    expect(problems.find((p) => p.startsWith('BODY_LIMIT_BYTES:'))).toContain('got "1.5"');
  });

  it('rejects a port out of range', () => {
    expect(problemsOf({ PORT: '70000' })).toEqual(['PORT: expected a whole number from 0 to 65535, got "70000"']);
  });

  it('requires DATABASE_URL in production', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([
      'DATABASE_URL: is required when NODE_ENV=production or on Cloud Run (K_SERVICE is set)',
    ]);
  });

  it('requires DATABASE_URL on Cloud Run', () => {
    expect(problemsOf({ K_SERVICE: 'api' })[0]).toMatch(/^DATABASE_URL: is required/);
  });

  it('accepts production with a database URL', () => {
    const { config, env } = load({ NODE_ENV: 'production', DATABASE_URL: 'postgres://app:pw@db:5432/app' });
    expect(config.production).toBe(true);
    expect(env.DATABASE_URL).toBe('postgres://app:pw@db:5432/app');
  });

  it('never shows the password of a rejected DATABASE_URL', () => {
    const problems = problemsOf({ DATABASE_URL: 'mysql://app:hunter2secret@db/app' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('mysql://app:***@db/app');
    expect(problems.join('\n')).not.toContain('hunter2secret');
  });

  it('does not echo a DATABASE_URL that is not a URL at all', () => {
    const problems = problemsOf({ DATABASE_URL: 'app:hunter2secret@db' });
    expect(problems.join('\n')).not.toContain('hunter2secret');
  });

  it('never shows any part of a rejected JWT_SIGNING_KEY', () => {
    const problems = problemsOf({ JWT_SIGNING_KEY: 'short-key-xyz' });
    expect(problems).toEqual([
      'JWT_SIGNING_KEY: expected at least 32 bytes (use `openssl rand -base64 48`), got a value of 13 bytes (not shown)',
    ]);
  });

  it('rejects a header timeout longer than the request timeout', () => {
    expect(problemsOf({ READ_HEADER_TIMEOUT_MS: '20000', READ_TIMEOUT_MS: '10000' })[0]).toMatch(
      /^READ_HEADER_TIMEOUT_MS: must not exceed READ_TIMEOUT_MS/,
    );
  });

  it('picks shutdown defaults that fit the Cloud Run 10 s grace', () => {
    const config = loadConfig({ K_SERVICE: 'api', DATABASE_URL: 'postgres://db/app' });
    expect(config.platform).toBe('cloudrun');
    expect(config.shutdown.terminationGraceMs).toBe(10_000);
    expect(
      config.shutdown.shutdownDelayMs + config.shutdown.gracefulTimeoutMs + config.shutdown.cleanupTimeoutMs,
    ).toBeLessThan(10_000);
  });

  it('counts the flush of the last log lines in the drain budget', () => {
    // 0 + 8500 + 1000 = 9500 fits Cloud Run's 10 s grace; the 500 ms flush on top does not.
    const problems = problemsOf({ K_SERVICE: 'api', DATABASE_URL: 'postgres://db/app', GRACEFUL_TIMEOUT_MS: '8500' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('+ 500 ms to flush the last log lines = 10000 ms');
  });

  it('rejects a drain longer than the Cloud Run grace and says which numbers to change', () => {
    const problems = problemsOf({ K_SERVICE: 'api', DATABASE_URL: 'postgres://db/app', GRACEFUL_TIMEOUT_MS: '10000' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(
      'SHUTDOWN_DELAY_MS (0) + GRACEFUL_TIMEOUT_MS (10000) + CLEANUP_TIMEOUT_MS (1000) + 500 ms to flush the last log lines = 11500 ms',
    );
    expect(problems[0]).toContain('termination grace (10000 ms, the Cloud Run default)');
  });

  it('checks the drain against Kubernetes and ECS at 30 s', () => {
    expect(problemsOf({ KUBERNETES_SERVICE_HOST: '10.0.0.1', SHUTDOWN_DELAY_MS: '25000' })[0]).toContain(
      '(30000 ms, the Kubernetes default)',
    );
    expect(
      problemsOf({ ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/x', GRACEFUL_TIMEOUT_MS: '29500' })[0],
    ).toContain('(30000 ms, the ECS default)');
  });

  it('uses an explicit TERMINATION_GRACE_MS instead of the platform default', () => {
    expect(
      loadConfig({ KUBERNETES_SERVICE_HOST: 'x', TERMINATION_GRACE_MS: '60000', SHUTDOWN_DELAY_MS: '25000' }).shutdown
        .terminationGraceMs,
    ).toBe(60_000);
    expect(problemsOf({ TERMINATION_GRACE_MS: '5000' })[0]).toContain('(5000 ms, TERMINATION_GRACE_MS)');
  });

  it('reports cross-field and per-field problems together', () => {
    const problems = problemsOf({ PORT: 'x', SHUTDOWN_DELAY_MS: '40000' });
    expect(problems.map((p) => p.split(':')[0])).toEqual(['PORT', 'GRACEFUL_TIMEOUT_MS']);
  });
});

describe('database settings', () => {
  it('rejects a statement timeout at or above the handler deadline when a database is configured', () => {
    const env = { DATABASE_URL: 'postgres://db/app', HANDLER_TIMEOUT_MS: '5000', DB_STATEMENT_TIMEOUT_MS: '5000' };
    expect(problemsOf(env)[0]).toMatch(/^DB_STATEMENT_TIMEOUT_MS: must be shorter than HANDLER_TIMEOUT_MS/);
    expect(load({ ...env, DB_STATEMENT_TIMEOUT_MS: '4000' }).env.DB_STATEMENT_TIMEOUT_MS).toBe(4000);
  });
});

describe('redaction of DATABASE_URL', () => {
  it('hides a password passed in the query string', () => {
    const problems = problemsOf({ DATABASE_URL: 'mysql://db/app?password=hunter2secret' });
    expect(problems.join('\n')).not.toContain('hunter2secret');
  });
});

describe('overload settings', () => {
  it('caps requests in flight and watches the event loop by default, with no rate limit', () => {
    expect(loadConfig({}).overload).toEqual({
      maxInflightRequests: 250,
      maxEventLoopDelayMs: 500,
      rateLimit: undefined,
    });
  });

  it('takes the burst from the rate when it is not given', () => {
    expect(loadConfig({ RATE_LIMIT_RPS: '20' }).overload.rateLimit).toEqual({ rps: 20, burst: 20 });
    expect(loadConfig({ RATE_LIMIT_RPS: '20', RATE_LIMIT_BURST: '50' }).overload.rateLimit).toEqual({
      rps: 20,
      burst: 50,
    });
  });

  it('rejects a burst without a rate, and a rate of zero', () => {
    expect(problemsOf({ RATE_LIMIT_BURST: '10' })).toEqual([
      'RATE_LIMIT_BURST: has no effect without RATE_LIMIT_RPS: set both, or neither, got "10"',
    ]);
    expect(problemsOf({ RATE_LIMIT_RPS: '0' })[0]).toMatch(/^RATE_LIMIT_RPS: expected a whole number from 1/);
  });
});

describe('WebSocket settings', () => {
  it('bounds messages, idle sockets and open sockets by default, and allows only the own origin', () => {
    expect(loadConfig({}).server.websocket).toEqual({
      maxMessageBytes: 1_048_576,
      idleTimeoutMs: 60_000,
      maxConnections: 10_000,
      origins: [],
    });
  });

  it('reads WEBSOCKET_ORIGINS as a list, and names it when an entry is not an origin', () => {
    expect(
      loadConfig({ WEBSOCKET_ORIGINS: 'https://App.example.com, http://localhost:3000' }).server.websocket?.origins,
    ).toEqual(['https://app.example.com', 'http://localhost:3000']);
    expect(problemsOf({ WEBSOCKET_ORIGINS: 'https://app.example.com/path' })[0]).toMatch(
      /^WEBSOCKET_ORIGINS: expected `\*` or origins such as https:\/\/app.example.com/,
    );
    expect(
      problemsOf({ WEBSOCKET_MAX_CONNECTIONS: '0', WEBSOCKET_IDLE_TIMEOUT_MS: '10' }).map((p) => p.split(':')[0]),
    ).toEqual(['WEBSOCKET_IDLE_TIMEOUT_MS', 'WEBSOCKET_MAX_CONNECTIONS']);
  });
});

describe('notes API settings', () => {
  it('allows 30 s of clock skew, tokens of up to a day, and keeps idempotency keys a day by default', () => {
    expect(load({}).env).toMatchObject({
      JWT_CLOCK_SKEW_MS: 30_000,
      JWT_MAX_LIFETIME_MS: 86_400_000,
      IDEMPOTENCY_RETENTION_MS: 86_400_000,
    });
  });

  it('takes the leeway, the lifetime and the retention from the environment', () => {
    expect(
      load({ JWT_CLOCK_SKEW_MS: '0', JWT_MAX_LIFETIME_MS: '3600000', IDEMPOTENCY_RETENTION_MS: '600000' }).env,
    ).toMatchObject({ JWT_CLOCK_SKEW_MS: 0, JWT_MAX_LIFETIME_MS: 3_600_000, IDEMPOTENCY_RETENTION_MS: 600_000 });
  });

  it('rejects each out-of-range value, naming the variable and its bounds', () => {
    expect(
      problemsOf({ JWT_CLOCK_SKEW_MS: '300001', JWT_MAX_LIFETIME_MS: '999', IDEMPOTENCY_RETENTION_MS: '59999' }),
    ).toEqual([
      'JWT_CLOCK_SKEW_MS: expected a whole number from 0 to 300000, got "300001"',
      'JWT_MAX_LIFETIME_MS: expected a whole number from 1000 to 2592000000, got "999"',
      'IDEMPOTENCY_RETENTION_MS: expected a whole number from 60000 to 2592000000, got "59999"',
    ]);
    expect(
      problemsOf({ JWT_CLOCK_SKEW_MS: '30s', JWT_MAX_LIFETIME_MS: '2592000001', IDEMPOTENCY_RETENTION_MS: '1d' }),
    ).toEqual([
      'JWT_CLOCK_SKEW_MS: expected a whole number from 0 to 300000, got "30s"',
      'JWT_MAX_LIFETIME_MS: expected a whole number from 1000 to 2592000000, got "2592000001"',
      'IDEMPOTENCY_RETENTION_MS: expected a whole number from 60000 to 2592000000, got "1d"',
    ]);
  });
});
