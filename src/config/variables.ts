import * as v from 'valibot';
import { parseTrust } from '../runtime/client-ip.js';
import { LOG_LEVELS } from '../runtime/logger.js';
import { doc } from './env-part.js';
import { integer, MAX_TIMEOUT_MS, milliseconds } from './primitives.js';

/**
 * Every variable the runtime itself reads, with its check, default and doc:
 * the raw environment, one entry each. Modules (runway/postgres) and the app
 * declare their own (env-part.ts). docs/configuration.md's table is checked
 * against these by a test (`npm run docs:config` writes it), so a default
 * lives here and nowhere else.
 */

/** The raw environment, variable by variable. Order is docs/configuration.md's order. */
export const RuntimeEnvSchema = v.object({
  PORT: v.optional(v.pipe(integer(0, 65_535), doc('TCP port to listen on. Cloud Run injects it.')), '8080'),
  HOST: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1, 'expected an address such as 0.0.0.0, :: or 127.0.0.1'),
      doc('Address to bind.', { defaultText: 'all interfaces' }),
    ),
  ),
  NODE_ENV: v.optional(
    v.pipe(
      v.string(),
      doc(
        '`production` is `config.production` for the app (runway/postgres can require `DATABASE_URL` with it). The runtime does not branch on it.',
      ),
    ),
    'development',
  ),
  LOG_LEVEL: v.optional(
    v.pipe(
      v.picklist(LOG_LEVELS, `expected one of ${LOG_LEVELS.join(', ')}`),
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
      doc(
        'How long a client may take less than WRITE_MIN_RATE_BPS of its response while bytes wait for it; then the socket is destroyed. Judged by progress: a stream that flows is never cut.',
      ),
    ),
    '30000',
  ),
  WRITE_MIN_RATE_BPS: v.optional(
    v.pipe(
      integer(0, 2 ** 30),
      doc(
        'Bytes per second a client must take while bytes wait for it (Kestrel’s default); 0 cuts only a client that takes nothing for WRITE_TIMEOUT_MS.',
      ),
    ),
    '240',
  ),
  HANDLER_TIMEOUT_MS: v.optional(
    v.pipe(
      milliseconds(),
      doc(
        'Deadline for the app to answer a request (a streamed body runs on after it); then its signal aborts and the client gets 503.',
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
  WEBSOCKET_MAX_MESSAGE_BYTES: v.optional(
    v.pipe(
      integer(1, 2 ** 30),
      doc('Largest WebSocket message a client may send; a larger one closes the socket 1009.'),
    ),
    '1048576',
  ),
  WEBSOCKET_IDLE_TIMEOUT_MS: v.optional(
    v.pipe(
      milliseconds(1_000),
      doc(
        'A WebSocket from which nothing arrived for half of it is pinged; silent for all of it (no pong), it is dropped. Keep it below the load balancer idle timeout.',
      ),
    ),
    '60000',
  ),
  WEBSOCKET_MAX_CONNECTIONS: v.optional(
    v.pipe(integer(1, 1_000_000), doc('Open WebSockets, past which an upgrade gets 503 + Retry-After.')),
    '10000',
  ),
  WEBSOCKET_ORIGINS: v.optional(
    v.pipe(
      v.string(),
      v.transform((value) =>
        value
          .split(',')
          .map((origin) => origin.trim().toLowerCase())
          .filter((origin) => origin !== ''),
      ),
      v.check(
        (origins) => origins.every((origin) => origin === '*' || /^https?:\/\/[a-z0-9.-]+(:\d{1,5})?$/.test(origin)),
        'expected `*` or origins such as https://app.example.com, comma-separated',
      ),
      doc(
        'Origins a browser may open a WebSocket from besides the service’s own host, comma-separated; `*` any. A client that sends no Origin is not a browser and is not checked.',
        { defaultText: 'the service’s own host only' },
      ),
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
  K_SERVICE: v.optional(v.pipe(v.string(), doc('Set by Cloud Run; selects its defaults.', { platform: true }))),
  ECS_CONTAINER_METADATA_URI_V4: v.optional(
    v.pipe(v.string(), doc('Set by ECS; selects its termination grace.', { platform: true })),
  ),
  KUBERNETES_SERVICE_HOST: v.optional(
    v.pipe(v.string(), doc('Set by Kubernetes; selects its termination grace.', { platform: true })),
  ),
});

export type RuntimeEnv = v.InferOutput<typeof RuntimeEnvSchema>;
