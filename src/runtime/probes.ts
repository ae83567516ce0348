import type { CheckResult } from './health.js';
import { securityHeaders } from './security-headers.js';

/**
 * The two probes every edge answers before the app sees the request, never
 * shed and never rate-limited: liveness (`/healthz`, no dependency looked
 * at) and readiness (`/readyz`, health.ts). GET and HEAD, with or without a
 * query string. The headers are built once: /healthz is probed often and
 * must cost next to nothing.
 */

export type ProbeKind = 'live' | 'ready';

export function probeOf(method: string | undefined, pathAndQuery: string): ProbeKind | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  if (isPath(pathAndQuery, '/healthz')) return 'live';
  if (isPath(pathAndQuery, '/readyz')) return 'ready';
  return undefined;
}

function isPath(pathAndQuery: string, path: string): boolean {
  return pathAndQuery === path || (pathAndQuery.startsWith(path) && pathAndQuery[path.length] === '?');
}

/** What a probe answer says of its body; the node edge adds the security headers to every head (node-response.ts). */
export const probeContentHeaders: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  'cache-control': 'no-store',
};

export const probeHeaders: Readonly<Record<string, string>> = { ...securityHeaders, ...probeContentHeaders };

export const liveBody = '{"status":"ok"}';

export function readyAnswer(result: CheckResult): { status: number; body: string } {
  return {
    status: result.ok ? 200 : 503,
    body: JSON.stringify({ status: result.ok ? 'ready' : 'unavailable', checks: result.checks }),
  };
}
