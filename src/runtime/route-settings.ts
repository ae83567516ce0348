import { PatternRouter } from 'hono/router/pattern-router';
import { getPath } from 'hono/utils/url';
import * as v from 'valibot';

/**
 * Per-route settings an app declares next to its `fetch`: a body limit, a
 * handler deadline and a write timeout of the route's own (a long poll, an
 * upload, a download to slow links), over the server-wide BODY_LIMIT_BYTES,
 * HANDLER_TIMEOUT_MS, WRITE_TIMEOUT_MS and WRITE_MIN_RATE_BPS. Declared as
 * data, so they are validated like every other setting: once, when the app
 * has loaded and before it serves, every problem listed; an app whose table
 * is wrong fails to start (exit 1), it does not fail requests.
 *
 * `path` is a Hono path pattern (`/v1/notes/events`, `/v1/files/:id`,
 * `/uploads/*`), `method` one method or any; the first entry that matches a
 * request wins, so put the specific ones first.
 */

export const MAX_TIMEOUT_MS = 3_600_000;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const whole = (min: number, max: number) =>
  v.pipe(
    v.number(),
    v.integer(`expected a whole number from ${min} to ${max}`),
    v.minValue(min, `expected a whole number from ${min} to ${max}`),
    v.maxValue(max, `expected a whole number from ${min} to ${max}`),
  );

function isPattern(path: string): boolean {
  try {
    const probe = new PatternRouter<true>();
    probe.add('GET', path, true);
    probe.match('GET', '/');
    return true;
  } catch {
    return false;
  }
}

export const RouteSettingSchema = v.strictObject({
  method: v.optional(v.picklist(METHODS, `expected one of ${METHODS.join(', ')}`)),
  path: v.pipe(
    v.string(),
    v.startsWith('/', 'expected a path pattern starting with /'),
    v.check(isPattern, 'expected a Hono path pattern (one the router accepts)'),
  ),
  bodyLimitBytes: v.optional(whole(0, 2 ** 40)),
  handlerTimeoutMs: v.optional(whole(1, MAX_TIMEOUT_MS)),
  writeTimeoutMs: v.optional(whole(1, MAX_TIMEOUT_MS)),
  writeMinRateBps: v.optional(whole(0, 2 ** 30)),
});

export type RouteSetting = v.InferInput<typeof RouteSettingSchema>;

/** What a request's route sets; each field unset falls back to the server-wide setting. */
export interface RouteLimits {
  readonly bodyLimitBytes?: number | undefined;
  readonly handlerTimeoutMs?: number | undefined;
  readonly writeTimeoutMs?: number | undefined;
  readonly writeMinRateBps?: number | undefined;
}

/** `url`: the request's absolute URL (`absoluteUrl` makes one of node:http's target). */
export type LimitsFor = (method: string, url: string) => RouteLimits | undefined;

export class RouteSettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid route settings: ${problems.join('; ')}`);
    this.name = 'RouteSettingsError';
  }
}

/** Validates the table and returns its lookup; throws RouteSettingsError with every problem. */
export function compileRouteSettings(table: unknown): LimitsFor | undefined {
  const parsed = v.safeParse(v.array(RouteSettingSchema, 'expected an array of route settings'), table);
  if (!parsed.success) {
    throw new RouteSettingsError(
      parsed.issues.map((issue) => {
        const at = (issue.path ?? []).map((item) =>
          typeof item.key === 'number' ? `[${item.key}]` : `.${String(item.key)}`,
        );
        return `routeSettings${at.join('')}: ${issue.message}`;
      }),
    );
  }
  if (parsed.output.length === 0) return undefined;
  const router = new PatternRouter<RouteLimits>();
  for (const { method, path, ...limits } of parsed.output) router.add(method ?? 'ALL', path, limits);
  return (method, url) => {
    // The path as the app's router sees it (Hono's own getPath: percent-decoded, no query), and HEAD
    // as the GET it is served by: `/%73mall`, `http://host/small` and HEAD /small are /small's.
    const path = getPath({ url } as Request);
    return router.match(method === 'HEAD' ? 'GET' : method, path)[0][0]?.[0];
  };
}

/** A request target as node:http gives it (origin- or absolute-form), as the absolute URL a router reads. */
export function absoluteUrl(target: string): string {
  return target.startsWith('/') ? `http://h${target}` : target;
}
