import { createMiddleware } from 'hono/factory';
import { jwt } from 'hono/jwt';
import { HttpProblem } from '../runtime/problem.js';

/**
 * Bearer JWT through Hono's jwt middleware: HS256 pinned (a token with
 * `alg: none` or RS256 is refused), signature, `nbf`, `iat`, and `iss`/`aud`
 * when configured. On top of it, what the middleware leaves optional: `exp`
 * must be present, and `sub` names the caller who owns the data.
 */
export interface AuthOptions {
  signingKey: string;
  issuer?: string | undefined;
  audience?: string | undefined;
}

export type AuthVariables = { userId: string };

const challenge = { 'www-authenticate': 'Bearer error="invalid_token"' };

export function bearerAuth({ signingKey, issuer, audience }: AuthOptions) {
  // Hono imports a string secret with WebCrypto on every request; measured,
  // that import was the largest single cost of an authenticated request.
  // Import it once and hand the middleware the CryptoKey.
  let verify: ReturnType<typeof jwt> | undefined;
  const ready = crypto.subtle
    .importKey('raw', new TextEncoder().encode(signingKey), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
    .then((key) => {
      verify = jwt({ secret: key, alg: 'HS256', verification: { iss: issuer, aud: audience } });
      return verify;
    });
  return createMiddleware<{ Variables: AuthVariables & { jwtPayload: Record<string, unknown> } }>(async (c, next) => {
    const middleware = verify ?? (await ready);
    await middleware(c, async () => {
      const payload = c.get('jwtPayload');
      if (typeof payload.exp !== 'number') {
        throw new HttpProblem(401, { code: 'token_invalid', detail: 'the token has no exp claim', headers: challenge });
      }
      if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > 200) {
        throw new HttpProblem(401, {
          code: 'token_invalid',
          detail: 'the token has no usable sub claim',
          headers: challenge,
        });
      }
      c.set('userId', payload.sub);
      await next();
    });
  });
}
