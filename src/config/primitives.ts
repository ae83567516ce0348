import * as v from 'valibot';
import { MAX_TIMEOUT_MS } from '../runtime/route-settings.js';

/** The valibot pieces the variables are built from: bounded numbers, URLs, keys, and their docs. */

// One bound for every timeout, the server's and a route's own (route-settings.ts).
export { MAX_TIMEOUT_MS };

export function integer(min: number, max: number) {
  const expected = `expected a whole number from ${min} to ${max}`;
  return v.pipe(
    v.string(),
    v.regex(/^\d{1,10}$/, expected),
    v.transform(Number),
    v.minValue(min, expected),
    v.maxValue(max, expected),
  );
}

export const milliseconds = (min = 1) => integer(min, MAX_TIMEOUT_MS);

export const postgresUrl = v.pipe(
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

export const signingKey = v.pipe(
  v.string(),
  v.check((value) => Buffer.byteLength(value) >= 32, 'expected at least 32 bytes (use `openssl rand -base64 48`)'),
);

export type VariableMeta = {
  doc: string;
  secret?: boolean;
  defaultText?: string;
  platform?: boolean;
};
export const doc = <T>(text: string, extra: Omit<VariableMeta, 'doc'> = {}) =>
  v.metadata<T, VariableMeta>({ doc: text, ...extra });
