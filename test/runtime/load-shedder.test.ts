import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLoadShedder } from '../../src/runtime/load-shedder.js';
import { createLogger } from '../../src/runtime/logger.js';

/**
 * The load shedder's decisions in-process (load-shedder.ts). The event-loop
 * delay itself needs a busy loop and a real process: overload.test.ts.
 */

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function shedder(maxInFlight: number) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'info', write: (line) => lines.push(JSON.parse(line)) });
  return { shedder: createLoadShedder({ maxInFlight, maxEventLoopDelayMs: 0, log }), lines };
}

describe('load shedding decisions', () => {
  it('refuses at the in-flight cap and admits below it', () => {
    const { shedder: s } = shedder(2);
    expect(s.check(1)).toBeUndefined();
    expect(s.check(2)).toBe('max_inflight');
    expect(s.check(3)).toBe('max_inflight');
  });

  it('has no cap at 0, and no loop-delay verdict before it is started', () => {
    const { shedder: s } = shedder(0);
    expect(s.check(1_000_000)).toBeUndefined();
    expect(s.overloaded).toBe(false);
  });

  it('logs refusals at most once a second, with what was refused since the last line and the totals', async () => {
    const { shedder: s, lines } = shedder(1);
    s.count('max_inflight');
    s.count('max_inflight');
    s.count('rate_limit');
    // The first refusal is logged at once; the next two wait for the next line.
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ refused: { max_inflight: 1 } });
    await vi.advanceTimersByTimeAsync(1_000);
    s.count('body_memory');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      message: 'requests refused',
      refused: { max_inflight: 1, rate_limit: 1, body_memory: 1, event_loop_delay: 0 },
      totals: { max_inflight: 2, rate_limit: 1, body_memory: 1, event_loop_delay: 0 },
    });
  });
});
