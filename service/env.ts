import { doc, integer } from 'runway';
import { postgresEnv } from 'runway/postgres/env';
import * as v from 'valibot';

/**
 * The notes service's variables: runway/postgres's (the database is required
 * in production: the API cannot serve without it) and its own. Validated with
 * the runtime's, all at once, before anything listens.
 */

const signingKey = v.pipe(
  v.string(),
  v.check((value) => Buffer.byteLength(value) >= 32, 'expected at least 32 bytes (use `openssl rand -base64 48`)'),
);

export const NotesEnvSchema = v.object({
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
  FEED_RETENTION_MS: v.optional(
    v.pipe(
      integer(60_000, 7_776_000_000),
      doc(
        'How long the change feed keeps its history; a client resuming from before it is told `truncated` and reloads. From 1 min to 90 days.',
      ),
    ),
    '604800000',
  ),
});

export const env = [postgresEnv({ requiredInProduction: true }), { name: 'notes', schema: NotesEnvSchema }] as const;

export type NotesEnv = v.InferOutput<typeof NotesEnvSchema>;
