import * as v from 'valibot';
import { parseTrust, type Trust } from './runtime/client-ip.js';
import { LOG_FLUSH_TIMEOUT_MS } from './runtime/line-writer.js';

/**
 * Every setting runway reads, as one valibot schema over the environment.
 * The README's variable table is checked against this schema by a test, so a
 * default lives here and nowhere else.
 */

// Platforms whose termination grace we know. Sources: Cloud Run "container
// runtime contract" (SIGTERM, then SIGKILL 10 s later); ECS task definition
// `stopTimeout` default 30 s; Kubernetes `terminationGracePeriodSeconds`
// default 30 s.
export const platforms = {
  cloudrun: { name: 'Cloud Run', terminationGraceMs: 10_000, gracefulTimeoutMs: 8_000 },
  ecs: { name: 'ECS', terminationGraceMs: 30_000, gracefulTimeoutMs: 10_000 },
  kubernetes: { name: 'Kubernetes', terminationGraceMs: 30_000, gracefulTimeoutMs: 10_000 },
  // Anywhere else (a VM, a laptop) we assume the common 30 s of ECS and Kubernetes.
  other: { name: 'no platform detected', terminationGraceMs: 30_000, gracefulTimeoutMs: 10_000 },
} as const;
export type Platform = keyof typeof platforms;

const MAX_TIMEOUT_MS = 3_600_000;

function integer(min: number, max: number) {
  const expected = `expected a whole number from ${min} to ${max}`;
  return v.pipe(
    v.string(),
    v.regex(/^\d{1,10}$/, expected),
    v.transform(Number),
    v.minValue(min, expected),
    v.maxValue(max, expected),
  );
}

const milliseconds = (min = 1) => integer(min, MAX_TIMEOUT_MS);

const postgresUrl = v.pipe(
  v.string(),
  v.check((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'expected a URL of the form postgres://user:password@host:5432/database'),
);

const signingKey = v.pipe(
  v.string(),
  v.check((value) => Buffer.byteLength(value) >= 32, 'expected at least 32 bytes (use `openssl rand -base64 48`)'),
);

type VariableMeta = {
  doc: string;
  secret?: boolean;
  defaultText?: string;
  platform?: boolean;
};
const doc = <T>(text: string, extra: Omit<VariableMeta, 'doc'> = {}) =>
  v.metadata<T, VariableMeta>({ doc: text, ...extra });

/** The raw environment, variable by variable. Order is the README's order. */
export const EnvSchema = v.object({
  PORT: v.optional(v.pipe(integer(0, 65_535), doc('TCP port to listen on. Cloud Run injects it.')), '8080'),
  HOST: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1, 'expected an address such as 0.0.0.0, :: or 127.0.0.1'),
      doc('Address to bind.', { defaultText: 'all interfaces' }),
    ),
  ),
  NODE_ENV: v.optional(
    v.pipe(v.string(), doc('`production` makes `DATABASE_URL` required. Nothing else branches on it.')),
    'development',
  ),
  LOG_LEVEL: v.optional(
    v.pipe(
      v.picklist(['debug', 'info', 'warn', 'error'], 'expected one of debug, info, warn, error'),
      doc('Lowest severity written to stdout.'),
    ),
    'info',
  ),
  READ_HEADER_TIMEOUT_MS: v.optional(
    v.pipe(milliseconds(), doc('Time to receive the request line and headers (slowloris). Node `headersTimeout`.')),
    '5000',
  ),
  READ_TIMEOUT_MS: v.optional(
    v.pipe(milliseconds(), doc('Time to receive the whole request, body included. Node `requestTimeout`.')),
    '15000',
  ),
  WRITE_TIMEOUT_MS: v.optional(
    v.pipe(
      milliseconds(),
      doc('Time from the end of the request headers to the end of the response; then the socket is destroyed.'),
    ),
    '30000',
  ),
  HANDLER_TIMEOUT_MS: v.optional(
    v.pipe(
      milliseconds(),
      doc(
        'Deadline for the app to answer a request; then its signal aborts and the client gets 503. Below WRITE_TIMEOUT_MS.',
      ),
    ),
    '25000',
  ),
  IDLE_TIMEOUT_MS: v.optional(
    v.pipe(
      milliseconds(),
      doc('How long an idle keep-alive socket stays open. Keep it above the load balancer idle timeout.'),
    ),
    '120000',
  ),
  SHUTDOWN_DELAY_MS: v.optional(
    v.pipe(
      milliseconds(0),
      doc('After SIGTERM, keep serving this long with readiness 503 so the load balancer stops routing.'),
    ),
    '0',
  ),
  GRACEFUL_TIMEOUT_MS: v.optional(
    v.pipe(
      milliseconds(),
      doc('After the delay, how long in-flight requests may take before they are aborted.', {
        defaultText: '10000 (8000 on Cloud Run)',
      }),
    ),
  ),
  CLEANUP_TIMEOUT_MS: v.optional(
    v.pipe(milliseconds(), doc('Bound on the cleanup hooks (database pool) after the drain.')),
    '1000',
  ),
  TERMINATION_GRACE_MS: v.optional(
    v.pipe(
      milliseconds(),
      doc("The platform's SIGTERM-to-SIGKILL grace, when it is not the platform default.", {
        defaultText: 'platform default',
      }),
    ),
  ),
  READINESS_TIMEOUT_MS: v.optional(v.pipe(milliseconds(), doc('Default bound on each readiness check.')), '2000'),
  BODY_LIMIT_BYTES: v.optional(
    v.pipe(integer(0, 2 ** 40), doc('Largest request body accepted (413 beyond it); routes may set their own.')),
    '1048576',
  ),
  MAX_BUFFERED_BODY_BYTES: v.optional(
    v.pipe(
      integer(0, 2 ** 40),
      doc(
        'Request-body bytes held in memory at once, all requests together; a body that does not fit gets 503 + Retry-After, unread; 0 = no bound.',
      ),
    ),
    '134217728',
  ),
  TRUSTED_PROXIES: v.optional(
    v.pipe(
      v.string(),
      v.rawTransform(({ dataset, addIssue, NEVER }) => {
        try {
          return parseTrust(dataset.value);
        } catch (error) {
          addIssue({
            message: `expected CIDRs, loopback, private, linklocal, cgnat or a hop count: ${(error as Error).message}`,
          });
          return NEVER;
        }
      }),
      doc(
        'Proxies whose `X-Forwarded-For` is believed: CIDRs, `loopback`, `private`, `linklocal`, `cgnat`, or a hop count.',
        {
          defaultText: 'none: the socket peer is the client',
        },
      ),
    ),
  ),
  MAX_INFLIGHT_REQUESTS: v.optional(
    v.pipe(
      integer(0, 1_000_000),
      doc(
        'Requests whose handler runs, past which new ones get 503 + Retry-After at once, body unread; 0 = no cap. Uploads still sending their body are not counted. Keep it at or above Cloud Run `containerConcurrency`.',
      ),
    ),
    '250',
  ),
  MAX_EVENT_LOOP_DELAY_MS: v.optional(
    v.pipe(
      integer(0, MAX_TIMEOUT_MS),
      doc('While the event loop lags more than this, new requests get 503 and /readyz is 503; 0 = off.'),
    ),
    '500',
  ),
  RATE_LIMIT_RPS: v.optional(
    v.pipe(
      integer(1, 1_000_000),
      doc('Requests per second per client IP (trusted, IPv6 per /64), per instance; over it 429.', {
        defaultText: 'no limit',
      }),
    ),
  ),
  RATE_LIMIT_BURST: v.optional(
    v.pipe(
      integer(1, 1_000_000),
      doc('Bucket size: requests a client may send at once before RATE_LIMIT_RPS applies.', {
        defaultText: 'RATE_LIMIT_RPS',
      }),
    ),
  ),
  LOG_HEALTH_CHECKS: v.optional(
    v.pipe(
      v.picklist(['true', 'false'], 'expected true or false'),
      v.transform((value) => value === 'true'),
      doc('Write access lines for /healthz and /readyz too.'),
    ),
    'false',
  ),
  GOOGLE_CLOUD_PROJECT: v.optional(
    v.pipe(v.string(), doc('Project id; with it, log lines carry `logging.googleapis.com/trace`.')),
  ),
  DATABASE_URL: v.optional(
    v.pipe(
      postgresUrl,
      doc('Postgres connection URL. Required when `NODE_ENV=production` or on Cloud Run.', { secret: true }),
    ),
  ),
  DB_POOL_MAX: v.optional(v.pipe(integer(1, 1000), doc('Most connections the pool opens.')), '10'),
  DB_CONNECT_TIMEOUT_MS: v.optional(v.pipe(milliseconds(), doc('Bound on opening one database connection.')), '5000'),
  DB_IDLE_TIMEOUT_MS: v.optional(
    v.pipe(milliseconds(), doc('An idle pooled connection is closed after this long.')),
    '60000',
  ),
  DB_MAX_LIFETIME_MS: v.optional(
    v.pipe(milliseconds(), doc('A pooled connection is replaced after this long (failovers, rotated credentials).')),
    '1800000',
  ),
  DB_STATEMENT_TIMEOUT_MS: v.optional(
    v.pipe(milliseconds(), doc('Server-side `statement_timeout` of every connection. Below HANDLER_TIMEOUT_MS.')),
    '20000',
  ),
  DB_POOLER: v.optional(
    v.pipe(
      v.picklist(['none', 'transaction'], 'expected none or transaction'),
      doc(
        '`transaction` when a pooler in transaction mode (PgBouncer `pool_mode = transaction`) sits in front: no named prepared statements and no startup parameters it rejects, so DB_STATEMENT_TIMEOUT_MS is not sent; set `statement_timeout` on the database role instead.',
      ),
    ),
    'none',
  ),
  MIGRATE_ON_START: v.optional(
    v.pipe(
      v.picklist(['true', 'false'], 'expected true or false'),
      v.transform((value) => value === 'true'),
      doc('Apply pending migrations at startup (local runs; production uses a one-off `migrate` job).'),
    ),
    'false',
  ),
  JWT_SIGNING_KEY: v.optional(
    v.pipe(
      signingKey,
      doc('HS256 key for bearer tokens, at least 32 bytes. Without it the notes API answers 503.', { secret: true }),
    ),
  ),
  JWT_ISSUER: v.optional(v.pipe(v.string(), doc('When set, tokens must carry this `iss`.'))),
  JWT_AUDIENCE: v.optional(v.pipe(v.string(), doc('When set, tokens must carry this `aud`.'))),
  // RFC 7519 §4.1.4 allows "some small leeway, usually no more than a few
  // minutes"; 30 s covers clocks that NTP keeps within a second by far, and
  // lets an expired token live at most 30 s longer.
  JWT_CLOCK_SKEW_MS: v.optional(
    v.pipe(
      integer(0, 300_000),
      doc(
        'Leeway for clock drift between token issuer and this server, applied to `exp`, `nbf` and `iat`; at most 5 min.',
      ),
    ),
    '30000',
  ),
  JWT_MAX_LIFETIME_MS: v.optional(
    v.pipe(
      integer(1_000, 2_592_000_000),
      doc(
        'Longest token accepted: `exp - iat`, or `exp` from now without `iat`. A longer-lived token is refused (401); at most 30 days.',
      ),
    ),
    '86400000',
  ),
  IDEMPOTENCY_RETENTION_MS: v.optional(
    v.pipe(
      integer(60_000, 2_592_000_000),
      doc(
        'How long an `Idempotency-Key` and its stored response are kept; a retry after that does the work again. From 1 min to 30 days.',
      ),
    ),
    '86400000',
  ),
  K_SERVICE: v.optional(v.pipe(v.string(), doc('Set by Cloud Run; selects its defaults.', { platform: true }))),
  ECS_CONTAINER_METADATA_URI_V4: v.optional(
    v.pipe(v.string(), doc('Set by ECS; selects its termination grace.', { platform: true })),
  ),
  KUBERNETES_SERVICE_HOST: v.optional(
    v.pipe(v.string(), doc('Set by Kubernetes; selects its termination grace.', { platform: true })),
  ),
});

type Env = v.InferOutput<typeof EnvSchema>;

export function detectPlatform(
  env: Pick<Env, 'K_SERVICE' | 'ECS_CONTAINER_METADATA_URI_V4' | 'KUBERNETES_SERVICE_HOST'>,
): Platform {
  if (env.K_SERVICE) return 'cloudrun';
  if (env.ECS_CONTAINER_METADATA_URI_V4) return 'ecs';
  if (env.KUBERNETES_SERVICE_HOST) return 'kubernetes';
  return 'other';
}

function shutdownBudget(env: Env) {
  const platform = platforms[detectPlatform(env)];
  return {
    platform,
    terminationGraceMs: env.TERMINATION_GRACE_MS ?? platform.terminationGraceMs,
    graceSource:
      env.TERMINATION_GRACE_MS !== undefined
        ? 'TERMINATION_GRACE_MS'
        : platform === platforms.other
          ? 'assumed: no platform detected, so the ECS and Kubernetes default'
          : `the ${platform.name} default`,
    gracefulTimeoutMs: env.GRACEFUL_TIMEOUT_MS ?? platform.gracefulTimeoutMs,
  };
}

export const ConfigSchema = v.pipe(
  EnvSchema,
  v.forward(
    v.partialCheck(
      [['DATABASE_URL'], ['NODE_ENV'], ['K_SERVICE']],
      (env) => env.DATABASE_URL !== undefined || (env.NODE_ENV !== 'production' && !env.K_SERVICE),
      'is required when NODE_ENV=production or on Cloud Run (K_SERVICE is set)',
    ),
    ['DATABASE_URL'],
  ),
  v.forward(
    v.partialCheck(
      [['RATE_LIMIT_BURST'], ['RATE_LIMIT_RPS']],
      (env) => env.RATE_LIMIT_BURST === undefined || env.RATE_LIMIT_RPS !== undefined,
      'has no effect without RATE_LIMIT_RPS: set both, or neither',
    ),
    ['RATE_LIMIT_BURST'],
  ),
  v.forward(
    v.partialCheck(
      [['MAX_BUFFERED_BODY_BYTES'], ['BODY_LIMIT_BYTES']],
      (env) => env.MAX_BUFFERED_BODY_BYTES === 0 || env.MAX_BUFFERED_BODY_BYTES >= env.BODY_LIMIT_BYTES,
      // Otherwise a body within the limit could never be accepted.
      'must be 0 or at least BODY_LIMIT_BYTES',
    ),
    ['MAX_BUFFERED_BODY_BYTES'],
  ),
  v.forward(
    v.partialCheck(
      [['READ_HEADER_TIMEOUT_MS'], ['READ_TIMEOUT_MS']],
      (env) => env.READ_HEADER_TIMEOUT_MS <= env.READ_TIMEOUT_MS,
      // Node throws at listen time otherwise; say it at load time instead.
      'must not exceed READ_TIMEOUT_MS (the header read is part of the request read)',
    ),
    ['READ_HEADER_TIMEOUT_MS'],
  ),
  v.forward(
    v.partialCheck(
      [['DB_STATEMENT_TIMEOUT_MS'], ['HANDLER_TIMEOUT_MS'], ['DATABASE_URL']],
      (env) => env.DATABASE_URL === undefined || env.DB_STATEMENT_TIMEOUT_MS < env.HANDLER_TIMEOUT_MS,
      // A statement the server still runs after the handler gave up is wasted work.
      'must be shorter than HANDLER_TIMEOUT_MS',
    ),
    ['DB_STATEMENT_TIMEOUT_MS'],
  ),
  v.forward(
    v.partialCheck(
      [['HANDLER_TIMEOUT_MS'], ['WRITE_TIMEOUT_MS']],
      (env) => env.HANDLER_TIMEOUT_MS < env.WRITE_TIMEOUT_MS,
      // Otherwise the write timeout destroys the socket before the 503 can be sent.
      'must be shorter than WRITE_TIMEOUT_MS, so a timed-out request still gets its 503',
    ),
    ['HANDLER_TIMEOUT_MS'],
  ),
  v.forward(
    v.partialCheck(
      [
        ['SHUTDOWN_DELAY_MS'],
        ['GRACEFUL_TIMEOUT_MS'],
        ['CLEANUP_TIMEOUT_MS'],
        ['TERMINATION_GRACE_MS'],
        ['K_SERVICE'],
        ['ECS_CONTAINER_METADATA_URI_V4'],
        ['KUBERNETES_SERVICE_HOST'],
      ],
      (env) => {
        const budget = shutdownBudget(env as Env);
        return (
          env.SHUTDOWN_DELAY_MS + budget.gracefulTimeoutMs + env.CLEANUP_TIMEOUT_MS + LOG_FLUSH_TIMEOUT_MS <
          budget.terminationGraceMs
        );
      },
      (issue) => {
        const env = issue.input as Env;
        const budget = shutdownBudget(env);
        const total = env.SHUTDOWN_DELAY_MS + budget.gracefulTimeoutMs + env.CLEANUP_TIMEOUT_MS + LOG_FLUSH_TIMEOUT_MS;
        return (
          `SHUTDOWN_DELAY_MS (${env.SHUTDOWN_DELAY_MS}) + GRACEFUL_TIMEOUT_MS (${budget.gracefulTimeoutMs}) + ` +
          `CLEANUP_TIMEOUT_MS (${env.CLEANUP_TIMEOUT_MS}) + ${LOG_FLUSH_TIMEOUT_MS} ms to flush the last log lines = ` +
          `${total} ms must be shorter than the termination grace ` +
          `(${budget.terminationGraceMs} ms, ${budget.graceSource}), or the platform kills the process mid-drain: ` +
          'lower those timeouts or raise the grace (and TERMINATION_GRACE_MS with it)'
        );
      },
    ),
    ['GRACEFUL_TIMEOUT_MS'],
  ),
  v.transform((env) => {
    const platform = detectPlatform(env);
    const budget = shutdownBudget(env);
    return {
      platform,
      production: env.NODE_ENV === 'production',
      port: env.PORT,
      host: env.HOST,
      logLevel: env.LOG_LEVEL,
      readHeaderTimeoutMs: env.READ_HEADER_TIMEOUT_MS,
      readTimeoutMs: env.READ_TIMEOUT_MS,
      writeTimeoutMs: env.WRITE_TIMEOUT_MS,
      idleTimeoutMs: env.IDLE_TIMEOUT_MS,
      handlerTimeoutMs: env.HANDLER_TIMEOUT_MS,
      shutdownDelayMs: env.SHUTDOWN_DELAY_MS,
      gracefulTimeoutMs: budget.gracefulTimeoutMs,
      cleanupTimeoutMs: env.CLEANUP_TIMEOUT_MS,
      terminationGraceMs: budget.terminationGraceMs,
      readinessTimeoutMs: env.READINESS_TIMEOUT_MS,
      bodyLimitBytes: env.BODY_LIMIT_BYTES,
      maxBufferedBodyBytes: env.MAX_BUFFERED_BODY_BYTES,
      trust: env.TRUSTED_PROXIES ?? ({ kind: 'none' } as Trust),
      maxInflightRequests: env.MAX_INFLIGHT_REQUESTS,
      maxEventLoopDelayMs: env.MAX_EVENT_LOOP_DELAY_MS,
      rateLimit:
        env.RATE_LIMIT_RPS === undefined
          ? undefined
          : { rps: env.RATE_LIMIT_RPS, burst: env.RATE_LIMIT_BURST ?? env.RATE_LIMIT_RPS },
      logHealthChecks: env.LOG_HEALTH_CHECKS,
      projectId: env.GOOGLE_CLOUD_PROJECT,
      databaseUrl: env.DATABASE_URL,
      jwtSigningKey: env.JWT_SIGNING_KEY,
      jwtIssuer: env.JWT_ISSUER,
      jwtAudience: env.JWT_AUDIENCE,
      jwtClockSkewMs: env.JWT_CLOCK_SKEW_MS,
      jwtMaxLifetimeMs: env.JWT_MAX_LIFETIME_MS,
      idempotencyRetentionMs: env.IDEMPOTENCY_RETENTION_MS,
      db: {
        poolMax: env.DB_POOL_MAX,
        connectTimeoutMs: env.DB_CONNECT_TIMEOUT_MS,
        idleTimeoutMs: env.DB_IDLE_TIMEOUT_MS,
        maxLifetimeMs: env.DB_MAX_LIFETIME_MS,
        statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS,
        pooler: env.DB_POOLER,
      },
      migrateOnStart: env.MIGRATE_ON_START,
    };
  }),
);

export type Config = v.InferOutput<typeof ConfigSchema>;
export type LogLevel = Config['logLevel'];

/** Thrown by loadConfig with every problem found, already redacted. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const secretVariables = new Set(
  Object.entries(EnvSchema.entries)
    .filter(([, schema]) => describeVariable(schema).secret)
    .map(([name]) => name),
);

/** How a rejected value may be shown: never a password, never a key. */
export function showValue(name: string, value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value !== 'string') return typeof value;
  if (name === 'DATABASE_URL') return redactUrl(value);
  if (secretVariables.has(name)) return `a value of ${Buffer.byteLength(value)} bytes (not shown)`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

export function redactUrl(value: string): string {
  const notShown = 'a value that is not a postgres URL (not shown: it may hold a password)';
  try {
    const url = new URL(value);
    // Without an authority part the "password" may sit anywhere in the text.
    if (!url.host) return notShown;
    const user = url.username ? `${url.username}${url.password ? ':***' : ''}@` : '';
    // The query can carry `password=`: never shown.
    const query = url.search ? '?(query not shown)' : '';
    return JSON.stringify(`${url.protocol}//${user}${url.host}${url.pathname}${query}`);
  } catch {
    return notShown;
  }
}

/** Pure: reads only the object it is given. Collects every problem, then throws once. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.entries)) {
    const value = env[name];
    // An empty variable is treated as unset, as shells and YAML make them easily.
    if (value !== undefined && value !== '') input[name] = value;
  }
  const result = v.safeParse(ConfigSchema, input);
  if (result.success) return result.output;
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const issue of result.issues) {
    const name = issue.path?.map((item) => String(item.key)).join('.') ?? '(config)';
    // One line per variable: a bad number fails several checks that say the same.
    if (seen.has(name)) continue;
    seen.add(name);
    // A cross-field check on a variable left at its default has no given value to show.
    const given =
      issue.type === 'partial_check' && input[name] === undefined ? '' : `, got ${showValue(name, input[name])}`;
    problems.push(`${name}: ${issue.message}${given}`);
  }
  throw new ConfigError(problems);
}

export interface VariableDoc {
  name: string;
  default: string;
  doc: string;
  secret: boolean;
  platform: boolean;
}

function describeVariable(schema: unknown): Omit<VariableDoc, 'name'> {
  const optional = schema as { default?: unknown; wrapped?: { pipe?: unknown[] } };
  const meta = (optional.wrapped?.pipe ?? []).find(
    (item): item is { kind: 'metadata'; metadata: Record<string, unknown> } =>
      (item as { kind?: string }).kind === 'metadata',
  )?.metadata;
  const defaultText = (meta?.defaultText as string | undefined) ?? (optional.default as string | undefined) ?? '';
  return {
    default: defaultText,
    doc: (meta?.doc as string | undefined) ?? '',
    secret: meta?.secret === true,
    platform: meta?.platform === true,
  };
}

/** The variable table, derived from the schema (README is tested against it). */
export function describeVariables(): VariableDoc[] {
  return Object.entries(EnvSchema.entries).map(([name, schema]) => ({ name, ...describeVariable(schema) }));
}
