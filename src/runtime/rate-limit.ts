/**
 * A token bucket per client: `burst` tokens, refilled at `rps` per second;
 * a request takes one or is refused. Keyed by the *trusted* client address
 * (client-ip.ts), so a forged `X-Forwarded-For` never buys a fresh bucket;
 * IPv6 clients by their /64, the block one subscriber gets, so rotating
 * addresses inside it buys nothing either.
 *
 * Memory is bounded twice: a sweep deletes every bucket that has refilled
 * to full (it is then the same as no bucket at all), and past `maxClients`
 * the oldest bucket goes first. Both err towards letting a client through,
 * never towards refusing one that is within its limit.
 */

export interface RateLimitOptions {
  rps: number;
  burst: number;
  /** Most buckets kept; a flood of distinct addresses cannot grow memory past it. */
  maxClients?: number;
  now?: () => number;
}

export interface Verdict {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until the bucket is full again (the `t` of the `RateLimit` header). */
  resetSeconds: number;
  /** Seconds until one token is back; set when refused. */
  retryAfterSeconds: number;
}

export interface RateLimiter {
  take(clientAddress: string): Verdict;
  /** Drops the buckets that are full again. Runs on its own timer too. */
  sweep(): void;
  readonly size: number;
  /** The `RateLimit-Policy` header value. */
  readonly policy: string;
  /** The `RateLimit` header value for a verdict. */
  header(verdict: Verdict): string;
  stop(): void;
}

interface Bucket {
  tokens: number;
  at: number;
}

const POLICY_NAME = 'per-client';
const DEFAULT_MAX_CLIENTS = 50_000;

export function createRateLimiter({
  rps,
  burst,
  maxClients = DEFAULT_MAX_CLIENTS,
  now = Date.now,
}: RateLimitOptions): RateLimiter {
  const buckets = new Map<string, Bucket>();
  const perMs = rps / 1000;
  const refillMs = (burst / rps) * 1000;
  // The policy as the IETF RateLimit fields draft states it: quota q per window w seconds.
  const policy = `"${POLICY_NAME}";q=${burst};w=${Math.max(1, Math.ceil(burst / rps))}`;

  const sweep = () => {
    const at = now();
    for (const [key, bucket] of buckets) {
      if (at - bucket.at >= refillMs) buckets.delete(key);
    }
  };
  const timer = setInterval(sweep, Math.max(1_000, Math.min(60_000, refillMs)));
  // Deno has no unref on its timer ids; there the interval is cleared by stop().
  (timer as { unref?: () => void }).unref?.();

  return {
    take(clientAddress) {
      const key = bucketKey(clientAddress);
      const at = now();
      let bucket = buckets.get(key);
      if (bucket) {
        bucket.tokens = Math.min(burst, bucket.tokens + (at - bucket.at) * perMs);
        bucket.at = at;
      } else {
        if (buckets.size >= maxClients) {
          // Maps iterate in insertion order: the first key is the oldest bucket.
          const oldest = buckets.keys().next().value as string;
          buckets.delete(oldest);
        }
        bucket = { tokens: burst, at };
        buckets.set(key, bucket);
      }
      const allowed = bucket.tokens >= 1;
      if (allowed) bucket.tokens -= 1;
      return {
        allowed,
        remaining: Math.floor(bucket.tokens),
        resetSeconds: Math.ceil((burst - bucket.tokens) / rps),
        retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / rps)),
      };
    },
    sweep,
    get size() {
      return buckets.size;
    },
    policy,
    header: (verdict) => `"${POLICY_NAME}";r=${verdict.remaining};t=${verdict.resetSeconds}`,
    stop: () => clearInterval(timer),
  };
}

/** IPv4 as is; IPv6 cut to its /64 (the first four groups, expanded). */
export function bucketKey(address: string): string {
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.toLowerCase().split('::');
  const groups = head === '' ? [] : head.split(':');
  if (tail !== undefined) {
    const rest = tail === '' ? [] : tail.split(':');
    while (groups.length + rest.length < 8) groups.push('0');
    groups.push(...rest);
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
