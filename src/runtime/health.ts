import type { Logger } from './logger.js';

/**
 * Liveness and readiness. Liveness never looks at dependencies (a restart
 * does not fix a database outage); readiness does, each check under its own
 * bound, and turns 503 the moment the drain starts so the load balancer
 * stops routing before the listener closes.
 *
 * Readiness costs a database round trip, and probes are unauthenticated and
 * never shed, so its load is bounded here whatever the probe rate: calls that
 * arrive while a round of checks runs share it, and a finished round answers
 * for READINESS_REUSE_MS. A flood of /readyz is then at most one round of
 * checks per READINESS_REUSE_MS, and a 1 s old answer is still honest for a
 * load balancer that probes every few seconds. Start-up and the drain are
 * never cached: they flip readiness at once.
 *
 * Why a check fails is logged (rate-limited), never put in the response:
 * /readyz is reachable by anyone who reaches the port.
 */

export type ReadinessCheck = (signal: AbortSignal) => Promise<unknown> | unknown;

export interface CheckResult {
  ok: boolean;
  checks: Record<string, string>;
}

export interface Health {
  /**
   * Add a readiness check. It fails when it throws, returns `false`, or outlives `timeoutMs`.
   * What it throws is logged as the reason: its message must hold no secret.
   */
  register(name: string, check: ReadinessCheck, options?: { timeoutMs?: number }): void;
  markStarted(): void;
  markDraining(): void;
  readiness(): Promise<CheckResult>;
}

export const READINESS_REUSE_MS = 1_000;
// While a check stays down, its reason is logged again this often.
const DOWN_LOG_EVERY_MS = 60_000;
const MAX_REASON_CHARS = 300;

class CheckTimeout extends Error {}

interface Entry {
  name: string;
  check: ReadinessCheck;
  timeoutMs: number;
  downSince: number | undefined;
  loggedAt: number;
}

export interface HealthOptions {
  defaultTimeoutMs?: number;
  log?: Logger;
  now?: () => number;
}

export function createHealth({ defaultTimeoutMs = 2_000, log, now = Date.now }: HealthOptions = {}): Health {
  const entries: Entry[] = [];
  let started = false;
  let draining = false;
  let round: Promise<CheckResult> | undefined;
  let last: { at: number; result: CheckResult } | undefined;

  const run = async (entry: Entry): Promise<{ status: string; reason?: string }> => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new CheckTimeout(`timed out after ${entry.timeoutMs} ms`);
        controller.abort(error);
        reject(error);
      }, entry.timeoutMs);
    });
    try {
      const result = await Promise.race([Promise.resolve().then(() => entry.check(controller.signal)), timeout]);
      return result === false ? { status: 'down', reason: 'the check returned false' } : { status: 'up' };
    } catch (error) {
      if (error instanceof CheckTimeout) return { status: `down: ${error.message}`, reason: error.message };
      return { status: 'down', reason: reasonOf(error) };
    } finally {
      clearTimeout(timer);
    }
  };

  const report = (entry: Entry, outcome: { status: string; reason?: string }, at: number) => {
    if (outcome.status === 'up') {
      if (entry.downSince !== undefined) {
        log?.info('readiness check recovered', { check: entry.name, downMs: at - entry.downSince });
      }
      entry.downSince = undefined;
      return;
    }
    const first = entry.downSince === undefined;
    if (first) entry.downSince = at;
    if (!first && at - entry.loggedAt < DOWN_LOG_EVERY_MS) return;
    entry.loggedAt = at;
    log?.warn('readiness check failed', {
      check: entry.name,
      reason: outcome.reason,
      downMs: at - (entry.downSince ?? at),
    });
  };

  const checkAll = async (): Promise<CheckResult> => {
    const outcomes = await Promise.all(entries.map(run));
    const at = now();
    const checks: Record<string, string> = {};
    entries.forEach((entry, i) => {
      const outcome = outcomes[i] as { status: string; reason?: string };
      checks[entry.name] = outcome.status;
      report(entry, outcome, at);
    });
    return { ok: outcomes.every((outcome) => outcome.status === 'up'), checks };
  };

  return {
    register(name, check, { timeoutMs = defaultTimeoutMs } = {}) {
      entries.push({ name, check, timeoutMs, downSince: undefined, loggedAt: 0 });
    },
    markStarted() {
      started = true;
    },
    markDraining() {
      draining = true;
    },
    readiness() {
      if (!started || draining) {
        const checks: Record<string, string> = {};
        if (!started) checks.startup = 'pending';
        if (draining) checks.shutdown = 'draining';
        return Promise.resolve({ ok: false, checks });
      }
      if (last && now() - last.at < READINESS_REUSE_MS) return Promise.resolve(last.result);
      round ??= checkAll().then(
        (result) => {
          last = { at: now(), result };
          round = undefined;
          return result;
        },
        (error: unknown) => {
          round = undefined;
          throw error;
        },
      );
      return round;
    },
  };
}

function reasonOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const text = typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
  return text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS)}…` : text;
}
