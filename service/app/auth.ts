import { createMiddleware } from 'hono/factory';
import { jwt } from 'hono/jwt';
import { HttpProblem } from 'runway/hono';
import { isStorable } from './storable-text.js';

/**
 * Bearer JWT through Hono's jwt middleware: HS256 pinned (a token with
 * `alg: none` or RS256 is refused), the signature, and `iss`/`aud` when
 * configured. The time claims are checked here instead, because Hono's have
 * no leeway: `exp` must be present, `exp`, `nbf` and `iat` allow
 * `clockSkewMs` of drift between issuer and server, and a token may live at
 * most `maxLifetimeMs` (`exp - iat`, or `exp` from now without `iat`), so a
 * leaked token with `exp` in the year 3000 is not a key for ever. `sub` names
 * the caller who owns the data.
 */
export interface AuthOptions {
  signingKey: string;
  issuer?: string | undefined;
  audience?: string | undefined;
  clockSkewMs: number;
  maxLifetimeMs: number;
}

export type AuthVariables = { userId: string };

const challenge = { 'www-authenticate': 'Bearer error="invalid_token"' };

const rejected = (detail: string, code = 'token_invalid') => new HttpProblem(401, { code, detail, headers: challenge });

// NumericDate (RFC 7519 §2): seconds since the epoch, fractions allowed.
const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

export function bearerAuth({ signingKey, issuer, audience, clockSkewMs, maxLifetimeMs }: AuthOptions) {
  const skew = clockSkewMs / 1000;
  const maxLifetime = maxLifetimeMs / 1000;
  // Hono imports a string secret with WebCrypto on every request; measured,
  // that import was the largest single cost of an authenticated request.
  // Import it once and hand the middleware the CryptoKey.
  let verify: ReturnType<typeof jwt> | undefined;
  const ready = crypto.subtle
    .importKey('raw', new TextEncoder().encode(signingKey), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
    .then((key) => {
      verify = jwt({
        secret: key,
        alg: 'HS256',
        verification: { iss: issuer, aud: audience, exp: false, nbf: false, iat: false },
      });
      return verify;
    });
  return createMiddleware<{ Variables: AuthVariables & { jwtPayload: Record<string, unknown> } }>(async (c, next) => {
    const middleware = verify ?? (await ready);
    await middleware(c, async () => {
      const { exp, nbf, iat, sub } = c.get('jwtPayload');
      const now = Date.now() / 1000;
      if (!isTime(exp)) throw rejected('the token has no exp claim');
      if (exp + skew <= now) throw rejected('the token has expired', 'token_expired');
      if (nbf !== undefined && (!isTime(nbf) || nbf - skew > now)) throw rejected('the token is not valid yet');
      if (iat !== undefined && (!isTime(iat) || iat - skew > now)) throw rejected('the token was issued in the future');
      // With iat, the lifetime is the issuer's own arithmetic; without it, our clock is compared with the issuer's.
      const lifetime = iat === undefined ? exp - now - skew : exp - (iat as number);
      if (lifetime > maxLifetime) throw rejected('the token lives longer than this API accepts');
      if (typeof sub !== 'string' || sub === '' || sub.length > 200 || !isStorable(sub)) {
        throw rejected('the token has no usable sub claim');
      }
      c.set('userId', sub);
      await next();
    });
  });
}
