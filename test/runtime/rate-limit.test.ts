import { afterEach, describe, expect, it } from 'vitest';
import { bucketKey, createRateLimiter, type RateLimiter } from '../../src/runtime/rate-limit.js';

const limiters: RateLimiter[] = [];
afterEach(() => {
  for (const limiter of limiters.splice(0)) limiter.stop();
});

function limiterAt(options: { rps: number; burst: number; maxClients?: number }) {
  const clock = { now: 0 };
  const limiter = createRateLimiter({ ...options, now: () => clock.now });
  limiters.push(limiter);
  return { limiter, clock };
}

describe('token bucket per client', () => {
  it('lets a burst through, refuses the next request, and refills at the rate', () => {
    const { limiter, clock } = limiterAt({ rps: 2, burst: 3 });
    expect([1, 2, 3].map(() => limiter.take('203.0.113.1').allowed)).toEqual([true, true, true]);
    const refused = limiter.take('203.0.113.1');
    expect(refused).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 1 });
    clock.now = 499;
    expect(limiter.take('203.0.113.1').allowed).toBe(false);
    clock.now = 1_000;
    expect(limiter.take('203.0.113.1')).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('keeps one bucket per client', () => {
    const { limiter } = limiterAt({ rps: 1, burst: 1 });
    expect(limiter.take('203.0.113.1').allowed).toBe(true);
    expect(limiter.take('203.0.113.1').allowed).toBe(false);
    expect(limiter.take('203.0.113.2').allowed).toBe(true);
  });

  it('states the policy and the current limit in the IETF RateLimit field syntax', () => {
    const { limiter } = limiterAt({ rps: 5, burst: 10 });
    expect(limiter.policy).toBe('"per-client";q=10;w=2');
    expect(limiter.header(limiter.take('203.0.113.1'))).toBe('"per-client";r=9;t=1');
  });

  it('treats every address of one IPv6 /64 as one client', () => {
    expect(bucketKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(bucketKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(bucketKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(bucketKey('::1')).toBe('0:0:0:0::/64');
    expect(bucketKey('198.51.100.7')).toBe('198.51.100.7');
    const { limiter } = limiterAt({ rps: 1, burst: 1 });
    expect(limiter.take('2001:db8:1:2::1').allowed).toBe(true);
    expect(limiter.take('2001:db8:1:2::2').allowed).toBe(false);
  });

  it('forgets buckets that have refilled, so idle clients cost no memory', () => {
    const { limiter, clock } = limiterAt({ rps: 10, burst: 10 });
    for (let i = 0; i < 100; i++) limiter.take(`10.0.${i >> 8}.${i & 255}`);
    expect(limiter.size).toBe(100);
    clock.now = 999;
    limiter.sweep();
    expect(limiter.size).toBe(100);
    clock.now = 1_000;
    limiter.sweep();
    expect(limiter.size).toBe(0);
  });

  it('never holds more than maxClients buckets, whatever the number of distinct addresses', () => {
    const { limiter } = limiterAt({ rps: 1, burst: 5, maxClients: 1_000 });
    for (let i = 0; i < 100_000; i++) limiter.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    expect(limiter.size).toBe(1_000);
  });
});
