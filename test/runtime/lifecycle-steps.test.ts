import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DrainTimeoutError } from '../../src/runtime/abort-reasons.js';
import { createHealth } from '../../src/runtime/health.js';
import { createLifecycle, type Drainable, type LifecycleOptions } from '../../src/runtime/lifecycle.js';
import { createLogger } from '../../src/runtime/logger.js';

/**
 * The drain's steps in-process, with the exit injected and the clock the
 * test's own (vitest's fake timers), as lightship tests its shutdown with
 * `terminate: vi.fn()`. What only a process shows (signals, exit codes,
 * the last log lines) is in lifecycle.test.ts.
 */

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function setup(overrides: Partial<LifecycleOptions> = {}) {
  const events: string[] = [];
  const lines: { severity: string; message: string }[] = [];
  const log = createLogger({ level: 'info', write: (line) => lines.push(JSON.parse(line)) });
  const health = createHealth({ log });
  health.markStarted();
  const exits: { code: number; now: boolean | undefined }[] = [];
  const exit = vi.fn((code: number, now?: boolean) => {
    events.push(`exit ${code}${now ? ' now' : ''}`);
    exits.push({ code, now });
  });
  const lifecycle = createLifecycle({
    log,
    health,
    shutdownDelayMs: 1_000,
    gracefulTimeoutMs: 5_000,
    cleanupTimeoutMs: 2_000,
    exit,
    ...overrides,
  });
  return { lifecycle, health, events, lines, exit, exits };
}

/** A drainable whose requests end when the test says so (or never). */
function drainable(events: string[], { endsAfterMs }: { endsAfterMs: number | 'never' }) {
  const forced: Error[] = [];
  const d: Drainable = {
    stopAccepting: () => events.push('stop accepting'),
    waitForInFlight: (timeoutMs) =>
      new Promise((resolve) => {
        events.push('wait for in-flight');
        if (endsAfterMs !== 'never' && endsAfterMs <= timeoutMs) setTimeout(() => resolve(true), endsAfterMs);
        else setTimeout(() => resolve(false), timeoutMs);
      }),
    forceClose: async (reason) => {
      forced.push(reason);
      events.push('force close');
      return { requests: 2, streams: 1 };
    },
  };
  return { d, forced };
}

describe('the drain, step by step', () => {
  it('turns readiness 503, waits the shutdown delay, stops accepting, waits, cleans up in reverse, exits 0', async () => {
    const { lifecycle, health, events, exits } = setup();
    const { d } = drainable(events, { endsAfterMs: 300 });
    lifecycle.addDrainable(d);
    lifecycle.onCleanup('database', () => void events.push('cleanup database'));
    lifecycle.onCleanup('telemetry', () => void events.push('cleanup telemetry'));
    const done = lifecycle.shutdown({ signal: 'SIGTERM' });
    expect(lifecycle.signal.aborted).toBe(true);
    expect(await health.readiness()).toEqual({ ok: false, checks: { shutdown: 'draining' } });
    await vi.advanceTimersByTimeAsync(999);
    // Still accepting during the delay: the load balancer has not noticed yet.
    expect(events).toEqual([]);
    expect(lifecycle.stopAcceptingSignal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(lifecycle.stopAcceptingSignal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(300);
    await done;
    expect(events).toEqual(['stop accepting', 'wait for in-flight', 'cleanup telemetry', 'cleanup database', 'exit 0']);
    expect(exits).toEqual([{ code: 0, now: undefined }]);
  });

  it('aborts what is left at the graceful deadline with DrainTimeoutError, logs ERROR and exits 1', async () => {
    const { lifecycle, events, lines } = setup({ shutdownDelayMs: 0 });
    const { d, forced } = drainable(events, { endsAfterMs: 'never' });
    lifecycle.addDrainable(d);
    const done = lifecycle.shutdown({ signal: 'SIGTERM' });
    await vi.advanceTimersByTimeAsync(5_000);
    await done;
    expect(events).toEqual(['stop accepting', 'wait for in-flight', 'force close', 'exit 1']);
    expect(forced[0]).toBeInstanceOf(DrainTimeoutError);
    expect(lines).toContainEqual(
      expect.objectContaining({
        severity: 'ERROR',
        message: 'drain deadline reached, closed in-flight requests',
        inFlight: 2,
        streams: 1,
      }),
    );
  });

  it('exits at once with 128 + the signal number on a second signal, and the first drain does not exit again', async () => {
    const { lifecycle, exits } = setup();
    const first = lifecycle.shutdown({ signal: 'SIGTERM' });
    void lifecycle.shutdown({ signal: 'SIGINT' });
    expect(exits).toEqual([{ code: 130, now: true }]);
    await vi.advanceTimersByTimeAsync(1_000);
    await first;
    expect(exits.at(-1)).toEqual({ code: 0, now: undefined });
  });

  it('drains after a fatal error and exits 1', async () => {
    const { lifecycle, exits, lines } = setup({ shutdownDelayMs: 0 });
    const done = lifecycle.shutdown({ error: new Error('boom') });
    await vi.advanceTimersByTimeAsync(0);
    await done;
    expect(exits).toEqual([{ code: 1, now: undefined }]);
    expect(lines[0]).toMatchObject({ severity: 'ERROR', message: 'fatal error', error: { message: 'boom' } });
  });

  it('runs every cleanup hook when one fails, and exits 1', async () => {
    const { lifecycle, events, exits } = setup({ shutdownDelayMs: 0 });
    lifecycle.onCleanup('first', () => void events.push('cleanup first'));
    lifecycle.onCleanup('failing', () => Promise.reject(new Error('cleanup exploded')));
    const done = lifecycle.shutdown({ signal: 'SIGTERM' });
    await vi.advanceTimersByTimeAsync(0);
    await done;
    expect(events).toEqual(['cleanup first', 'exit 1']);
    expect(exits).toEqual([{ code: 1, now: undefined }]);
  });

  it('bounds a cleanup hook that never returns, aborting its signal at the cleanup timeout', async () => {
    const { lifecycle, exits } = setup({ shutdownDelayMs: 0 });
    let hookSignal: AbortSignal | undefined;
    lifecycle.onCleanup('hang', (signal) => {
      hookSignal = signal;
      return new Promise(() => {});
    });
    const done = lifecycle.shutdown({ signal: 'SIGTERM' });
    await vi.advanceTimersByTimeAsync(1_999);
    expect(exits).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await done;
    expect(hookSignal?.aborted).toBe(true);
    expect(exits).toEqual([{ code: 1, now: undefined }]);
  });

  it('exits 1 at once when the drain outlives all its bounds together', async () => {
    const { lifecycle, exits, lines } = setup({
      shutdownDelayMs: 0,
      gracefulTimeoutMs: 1_000,
      cleanupTimeoutMs: 1_000,
    });
    // A drainable that breaks its contract: its wait never ends.
    lifecycle.addDrainable({
      stopAccepting() {},
      waitForInFlight: () => new Promise(() => {}),
      forceClose: async () => ({ requests: 0, streams: 0 }),
    });
    void lifecycle.shutdown({ signal: 'SIGTERM' });
    // The budget: delay + grace + cleanup + 1 s.
    await vi.advanceTimersByTimeAsync(2_999);
    expect(exits).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(exits).toEqual([{ code: 1, now: true }]);
    expect(lines).toContainEqual(expect.objectContaining({ message: 'shutdown overran its budget, exiting' }));
  });
});
