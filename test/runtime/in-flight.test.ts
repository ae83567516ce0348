import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createInFlight } from '../../src/runtime/in-flight.js';

/** The drain's wait and abort over the requests in flight (in-flight.ts), on the test's clock. */

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('requests in flight', () => {
  it('resolves the wait at once when nothing is in flight', async () => {
    await expect(createInFlight<string>().wait(1_000)).resolves.toBe(true);
  });

  it('resolves the wait true when the last request ends, before the deadline', async () => {
    const inFlight = createInFlight<string>();
    inFlight.add('a');
    inFlight.add('b');
    const waited = inFlight.wait(1_000);
    inFlight.remove('a');
    await vi.advanceTimersByTimeAsync(10);
    inFlight.remove('b');
    await expect(waited).resolves.toBe(true);
  });

  it('resolves the wait false at the deadline while one is left', async () => {
    const inFlight = createInFlight<string>();
    inFlight.add('a');
    const waited = inFlight.wait(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    await expect(waited).resolves.toBe(false);
    expect(inFlight.items.size).toBe(1);
  });

  it('aborts every request, lets them end within the grace, and counts those there were', async () => {
    const inFlight = createInFlight<string>();
    for (const name of ['a', 'b', 'c']) inFlight.add(name);
    const aborted: string[] = [];
    const counted = inFlight.abortAll((name) => {
      aborted.push(name);
      // A handler that reacts to its signal at once.
      queueMicrotask(() => inFlight.remove(name));
    });
    await vi.advanceTimersByTimeAsync(0);
    await expect(counted).resolves.toBe(3);
    expect(aborted).toEqual(['a', 'b', 'c']);
    expect(inFlight.items.size).toBe(0);
  });
});
