import * as v from 'valibot';
import { MAX_TIMEOUT_MS } from '../runtime/route-settings.js';

/** The valibot pieces variables are built from: bounded whole numbers and durations, as strings from the environment. */

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
