/**
 * The response headers Hono's `secureHeaders()` sets by default, with the
 * same values. They are constant, so they are not set per response by a
 * middleware (it rewrites a materialised `Headers` object on every response:
 * measured at 0.43x throughput, docs/benchmarks.md) but by each edge: the
 * node edge writes them as one prepared block into node:http's header
 * (node-response.ts: one `setHeader` per header was most of runway's cost
 * per request over plain Hono), the web edges set them on the Response.
 * No `X-Powered-By` is ever sent. An answer that sets one of them itself
 * keeps its own value.
 *
 * Probes get them too: /healthz and /readyz are served on the app's public
 * host and port, where a browser can be pointed at them as at any URL, and
 * one rule for every answer leaves no path-shaped exception to audit. In the
 * prepared block they cost one string concatenation per answer.
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=15552000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
};

/** The same headers as raw lines, for answers written straight to a socket (client errors). */
export const securityHeaderLines = Object.entries(securityHeaders)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('');
