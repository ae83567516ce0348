import { describe, expect, it } from 'vitest';
import { type Deadlined, sweepDeadlines, sweepIntervalMs } from '../../src/runtime/deadlines.js';

/** The one deadline design of both edges (deadlines.ts), on a clock the test holds: `sweep(now)`. */

interface Item extends Deadlined {
  name: string;
}

function item(name: string, startedAt: number, running = true): Item & { answered: number } {
  const it: Item & { answered: number } = { name, startedAt, onDeadline: undefined, answered: 0 };
  if (running) it.onDeadline = () => it.answered++;
  return it;
}

describe('the handler and write deadlines', () => {
  it('answers a handler past its deadline once, and takes its answer off it first', () => {
    const late = item('late', 0);
    const early = item('early', 600);
    const deadlined: string[] = [];
    const options = {
      items: [late, early],
      handlerTimeoutMs: 1_000,
      onHandlerDeadline: (i: Item) => deadlined.push(`${i.name}:${i.onDeadline === undefined}`),
    };
    sweepDeadlines(options, 999);
    expect(deadlined).toEqual([]);
    sweepDeadlines(options, 1_000);
    sweepDeadlines(options, 1_500);
    expect(deadlined).toEqual(['late:true']);
    expect(late.answered).toBe(1);
    expect(early.answered).toBe(0);
    sweepDeadlines(options, 1_600);
    expect(deadlined).toEqual(['late:true', 'early:true']);
  });

  it('leaves alone a request whose handler has answered (nothing to answer at the deadline)', () => {
    const answered = item('answered', 0, false);
    const calls: string[] = [];
    sweepDeadlines({ items: [answered], handlerTimeoutMs: 10, onHandlerDeadline: () => calls.push('handler') }, 1_000);
    expect(calls).toEqual([]);
  });

  it("uses a route's own handler deadline over the server's", () => {
    const long = { ...item('long poll', 0), limits: { handlerTimeoutMs: 5_000 } };
    const plain = item('plain', 0);
    const deadlined: string[] = [];
    const options = {
      items: [long, plain],
      handlerTimeoutMs: 1_000,
      onHandlerDeadline: (i: Item) => deadlined.push(i.name),
    };
    sweepDeadlines(options, 1_000);
    expect(deadlined).toEqual(['plain']);
    sweepDeadlines(options, 5_000);
    expect(deadlined).toEqual(['plain', 'long poll']);
  });

  it("hands every request to the write check on every sweep, with the sweep's time", () => {
    const writing = item('writing', 0, false);
    const calls: string[] = [];
    const options = {
      items: [writing],
      handlerTimeoutMs: 100,
      onHandlerDeadline: () => calls.push('handler'),
      writeTimeoutMs: 500,
      checkWrite: (i: Item, now: number) => calls.push(`${i.name} at ${now}`),
    };
    sweepDeadlines(options, 10);
    sweepDeadlines(options, 60);
    expect(calls).toEqual(['writing at 10', 'writing at 60']);
  });

  it('sweeps every tenth of the shorter deadline, within 50 ms and 1 s', () => {
    expect(sweepIntervalMs(30_000, 10_000)).toBe(1_000);
    expect(sweepIntervalMs(3_000, 5_000)).toBe(300);
    expect(sweepIntervalMs(100)).toBe(50);
  });
});
