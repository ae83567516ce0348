import { sign } from 'hono/jwt';

/**
 * `npm run token [-- SUB [TTL_SECONDS]]`: mints a local HS256 bearer token
 * with JWT_SIGNING_KEY (and JWT_ISSUER / JWT_AUDIENCE when set) for trying
 * the API with curl. Prints only the token.
 */
const key = process.env.JWT_SIGNING_KEY;
if (!key || Buffer.byteLength(key) < 32) {
  console.error(
    'JWT_SIGNING_KEY must be set to at least 32 bytes (e.g. export JWT_SIGNING_KEY=$(openssl rand -base64 48))',
  );
  process.exit(1);
}
const [sub = 'local-user', ttlText = '3600'] = process.argv.slice(2);
const ttl = Number(ttlText);
if (!Number.isInteger(ttl) || ttl <= 0) {
  console.error(`TTL_SECONDS must be a positive whole number, got "${ttlText}"`);
  process.exit(1);
}
const now = Math.floor(Date.now() / 1000);
const claims: Record<string, unknown> = { sub, iat: now, exp: now + ttl };
if (process.env.JWT_ISSUER) claims.iss = process.env.JWT_ISSUER;
if (process.env.JWT_AUDIENCE) claims.aud = process.env.JWT_AUDIENCE;
console.log(await sign(claims, key, 'HS256'));
