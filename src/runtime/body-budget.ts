/**
 * A bound on the request-body bytes held in memory at once, across every
 * request. The body limit bounds one request; MAX_INFLIGHT_REQUESTS does not
 * count uploads (a slow upload must not hold a slot meant for handlers), so
 * without this nothing bounds their sum: 1000 connections each sending a
 * body 1 byte short of the 1 MiB limit and holding the last byte took a Node
 * 20 process from 55 MB to 1 GB of RSS for READ_TIMEOUT_MS (faults issue,
 * review). A body reserves its declared length before a byte is read, and a
 * chunked one reserves as its chunks arrive; the bytes go back when its
 * request ends. Over the budget, the request is refused 503 `overloaded`.
 */
export interface BodyBudget {
  /** Takes `bytes` from the budget; false (and nothing taken) when they do not fit. */
  reserve(bytes: number): boolean;
  release(bytes: number): void;
  /** The most one body may ever hold: a body larger than the whole budget is too large. */
  readonly maxBytes: number;
}

/** `maxBytes` 0: no bound. */
export function createBodyBudget(maxBytes: number): BodyBudget {
  let used = 0;
  return {
    maxBytes: maxBytes > 0 ? maxBytes : Number.POSITIVE_INFINITY,
    reserve(bytes) {
      if (maxBytes > 0 && used + bytes > maxBytes) return false;
      used += bytes;
      return true;
    },
    release(bytes) {
      used = Math.max(0, used - bytes);
    },
  };
}
