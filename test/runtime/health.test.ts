import { describe, expect, it } from 'vitest';
import { createHealth, READINESS_REUSE_MS } from '../../src/runtime/health.js';
import { createLogger } from '../../src/runtime/logger.js';

/** In-process: readiness with an injected clock and a check the test releases. */
function setup() {
  const clock = { now: 1_000_000 };
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'debug', write: (line) => lines.push(JSON.parse(line)) });
  const health = createHealth({ defaultTimeoutMs: 5_000, log, now: () => clock.now });
  return { clock, lines, health };
}

/** A check that counts its calls and answers when the test says. */
function controlledCheck() {
  let calls = 0;
  let release: ((outcome: 'up' | Error) => void) | undefined;
  const check = () => {
    calls++;
    return new Promise<void>((resolve, reject) => {
      release = (outcome) => (outcome === 'up' ? resolve() : reject(outcome));
    });
  };
  return {
    check,
    get calls() {
      return calls;
    },
    release(outcome: 'up' | Error) {
      release?.(outcome);
    },
  };
}

describe('readiness load', () => {
  it('runs one round of checks for many concurrent probes', async () => {
    const { health } = setup();
    const db = controlledCheck();
    health.register('db', db.check);
    health.markStarted();
    const probes = Array.from({ length: 200 }, () => health.readiness());
    await Promise.resolve();
    db.release('up');
    const results = await Promise.all(probes);
    expect(db.calls).toBe(1);
    expect(new Set(results.map((result) => JSON.stringify(result)))).toEqual(
      new Set([JSON.stringify({ ok: true, checks: { db: 'up' } })]),
    );
  });

  it('reuses a finished round for READINESS_REUSE_MS, then checks again', async () => {
    const { clock, health } = setup();
    const db = controlledCheck();
    health.register('db', db.check);
    health.markStarted();
    const first = health.readiness();
    await Promise.resolve();
    db.release('up');
    await first;
    clock.now += READINESS_REUSE_MS - 1;
    await health.readiness();
    expect(db.calls).toBe(1);
    clock.now += 1;
    const next = health.readiness();
    await Promise.resolve();
    db.release(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    expect(await next).toEqual({ ok: false, checks: { db: 'down' } });
    expect(db.calls).toBe(2);
  });

  it('turns not-ready at once when the drain starts, whatever was reused', async () => {
    const { health } = setup();
    health.register('db', () => true);
    health.markStarted();
    expect((await health.readiness()).ok).toBe(true);
    health.markDraining();
    expect(await health.readiness()).toEqual({ ok: false, checks: { shutdown: 'draining' } });
  });
});

describe('why readiness fails', () => {
  it('logs the reason once when a check goes down, and once when it recovers', async () => {
    const { clock, lines, health } = setup();
    let failure: Error | undefined = Object.assign(new Error('unsupported startup parameter: statement_timeout'), {
      code: '08P01',
    });
    health.register('db', () => {
      if (failure) throw failure;
    });
    health.markStarted();
    for (let i = 0; i < 3; i++) {
      await health.readiness();
      clock.now += READINESS_REUSE_MS;
    }
    failure = undefined;
    await health.readiness();
    clock.now += READINESS_REUSE_MS;
    await health.readiness();
    expect(lines.map(({ severity, message, check, reason }) => ({ severity, message, check, reason }))).toEqual([
      {
        severity: 'WARNING',
        message: 'readiness check failed',
        check: 'db',
        reason: '08P01: unsupported startup parameter: statement_timeout',
      },
      { severity: 'INFO', message: 'readiness check recovered', check: 'db', reason: undefined },
    ]);
  });

  it('logs a check that stays down again after a minute, not on every probe', async () => {
    const { clock, lines, health } = setup();
    health.register('db', () => false);
    health.markStarted();
    for (let i = 0; i < 70; i++) {
      await health.readiness();
      clock.now += READINESS_REUSE_MS;
    }
    const failed = lines.filter((line) => line.message === 'readiness check failed');
    expect(failed.map((line) => line.downMs)).toEqual([0, 60_000]);
  });
});
