import { randomUUID } from 'node:crypto';

// Short and of a safe charset: it is echoed in a header and written to logs,
// so no spaces, quotes, control characters or log-forging newlines.
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The incoming `X-Request-Id` when it is safe, else a fresh UUID. */
export function acceptRequestId(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && SAFE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}
