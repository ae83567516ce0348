import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createInFlight } from '../../src/runtime/in-flight.js';

/** The drain's wait and abort over the requests in flight (in-flight.ts), on the test's clock. */

type Item = { name: string };
const named = (...names: string[]) => names.map((name) => ({ name }));
const names = (items: Iterable<Item>) => [...items].map((item) => item.name);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('requests in flight', () => {
  it('resolves the wait at once when nothing is in flight', async () => {
    await expect(createInFlight<Item>().wait(1_000)).resolves.toBe(true);
  });

  it('resolves the wait true when the last request ends, before the deadline', async () => {
    const inFlight = createInFlight<Item>();
    const [a, b] = named('a', 'b') as [Item, Item];
    inFlight.add(a);
    inFlight.add(b);
    const waited = inFlight.wait(1_000);
    inFlight.remove(a);
    await vi.advanceTimersByTimeAsync(10);
    inFlight.remove(b);
    await expect(waited).resolves.toBe(true);
  });

  it('resolves the wait false at the deadline while one is left', async () => {
    const inFlight = createInFlight<Item>();
    inFlight.add({ name: 'a' });
    const waited = inFlight.wait(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    await expect(waited).resolves.toBe(false);
    expect(inFlight.items.size).toBe(1);
  });

  it('aborts every request, lets them end within the grace, and counts those there were', async () => {
    const inFlight = createInFlight<Item>();
    for (const item of named('a', 'b', 'c')) inFlight.add(item);
    const aborted: string[] = [];
    const counted = inFlight.abortAll((item) => {
      aborted.push(item.name);
      // A handler that reacts to its signal at once.
      queueMicrotask(() => inFlight.remove(item));
    });
    await vi.advanceTimersByTimeAsync(0);
    await expect(counted).resolves.toBe(3);
    expect(aborted).toEqual(['a', 'b', 'c']);
    expect(inFlight.items.size).toBe(0);
  });

  it('keeps the items in arrival order through removals and compactions, each once', () => {
    const inFlight = createInFlight<Item>();
    const all = named(...Array.from({ length: 200 }, (_, i) => String(i)));
    for (const item of all) inFlight.add(item);
    // Most leave (the holes outnumber the items), then more arrive: add() compacts.
    for (const item of all) if (Number(item.name) % 10 !== 0) inFlight.remove(item);
    const later = named('x', 'y');
    for (const item of later) inFlight.add(item);
    inFlight.add(all[0] as Item); // already in: not twice
    expect(names(inFlight.items)).toEqual(
      [...all.filter((item) => Number(item.name) % 10 === 0), ...later].map((item) => item.name),
    );
    expect(inFlight.items.size).toBe(22);
    // Removed ones can come back, and removing twice is harmless.
    inFlight.remove(later[0] as Item);
    inFlight.remove(later[0] as Item);
    inFlight.add(later[0] as Item);
    expect(names(inFlight.items).slice(-2)).toEqual(['y', 'x']);
    expect(inFlight.items.size).toBe(22);
  });

  it('iterates as a Set does while items leave and arrive: removed ones skipped, added ones visited', () => {
    const inFlight = createInFlight<Item>();
    const items = named(...Array.from({ length: 100 }, (_, i) => String(i)));
    for (const item of items) inFlight.add(item);
    const seen: string[] = [];
    for (const item of inFlight.items) {
      seen.push(item.name);
      if (item.name === '50') {
        // Those behind the iteration and most of those ahead leave, then one arrives: enough holes
        // that add() would compact, moving the ones left ahead to slots already passed, were
        // compaction not held off while an iteration is under way.
        for (const other of [...items.slice(0, 50), ...items.slice(51, 90)]) inFlight.remove(other);
        inFlight.add({ name: 'late' });
      }
    }
    expect(seen).toEqual([...items.slice(0, 51), ...items.slice(90)].map((item) => item.name).concat('late'));
    expect(inFlight.items.size).toBe(12);
    // Once it is over, the next add compacts: order and count still hold.
    inFlight.add({ name: 'later' });
    expect(names(inFlight.items)).toEqual(['50', ...items.slice(90).map((item) => item.name), 'late', 'later']);
  });

  it('is in two collections at once without either disturbing the other', () => {
    const requests = createInFlight<Item>();
    const draining = createInFlight<Item>();
    const [a, b] = named('a', 'b') as [Item, Item];
    requests.add(a);
    requests.add(b);
    draining.add(b);
    requests.remove(b);
    expect(names(requests.items)).toEqual(['a']);
    expect(names(draining.items)).toEqual(['b']);
  });
});
