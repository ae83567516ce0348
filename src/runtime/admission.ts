import type { LoadShedder, ShedReason } from './load-shedder.js';
import type { RateLimiter } from './rate-limit.js';
import { type ProblemAnswer, runtimeProblems } from './runtime-problems.js';

/**
 * Whether a request may go on, the same on every edge, in this order:
 *   1. the client's rate limit: over it, 429 (its doing, not ours); the
 *      RateLimit fields go on every answer, refused or not;
 *   2. the cap on requests whose handler runs (MAX_INFLIGHT_REQUESTS);
 *   3. the event-loop delay (MAX_EVENT_LOOP_DELAY_MS).
 * A refusal never reads the body: an edge answers it at once, and one that
 * announced a body also gets `Connection: close`, since the body still on the
 * wire would otherwise be read to reuse the connection. Once the body is in,
 * `again` checks 2 and 3 once more (a slow upload holds no slot), and a body
 * that does not fit in MAX_BUFFERED_BODY_BYTES is refused with `refuse`.
 * Every refusal is counted in the shedder's summary line, none gets an
 * access line.
 */

export interface Refusal extends ProblemAnswer {
  reason: ShedReason;
}

export interface Verdict {
  refusal: Refusal | undefined;
  /** The RateLimit-Policy and RateLimit fields, when the rate limit is on. */
  rateHeaders: [string, string][] | undefined;
}

export interface Admission {
  /** `running`: requests whose handler runs now. `clientIp` is asked only when the rate limit is on. */
  arrive(clientIp: () => string, running: number): Verdict;
  again(running: number): Refusal | undefined;
  refuse(reason: ShedReason): Refusal;
}

export function createAdmission({
  rateLimiter,
  shedder,
}: {
  rateLimiter?: RateLimiter | undefined;
  shedder?: LoadShedder | undefined;
}): Admission {
  const refuse = (reason: ShedReason, retryAfterSeconds = 1): Refusal => {
    shedder?.count(reason);
    const answer =
      reason === 'rate_limit' ? runtimeProblems.rateLimited(retryAfterSeconds) : runtimeProblems.overloaded(reason);
    return { ...answer, reason };
  };
  const again = (running: number) => {
    const reason = shedder?.check(running);
    return reason ? refuse(reason) : undefined;
  };
  return {
    arrive(clientIp, running) {
      if (!rateLimiter) return { refusal: again(running), rateHeaders: undefined };
      const verdict = rateLimiter.take(clientIp());
      const rateHeaders: [string, string][] = [
        ['ratelimit-policy', rateLimiter.policy],
        ['ratelimit', rateLimiter.header(verdict)],
      ];
      if (!verdict.allowed) return { refusal: refuse('rate_limit', verdict.retryAfterSeconds), rateHeaders };
      return { refusal: again(running), rateHeaders };
    },
    again,
    refuse,
  };
}
