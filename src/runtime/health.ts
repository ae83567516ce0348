/**
 * Liveness and readiness. Liveness never looks at dependencies (a restart
 * does not fix a database outage); readiness does, each check under its own
 * bound, and turns 503 the moment the drain starts so the load balancer
 * stops routing before the listener closes.
 */

export type ReadinessCheck = (signal: AbortSignal) => Promise<unknown> | unknown;

export interface CheckResult {
  ok: boolean;
  checks: Record<string, string>;
}

export interface Health {
  /** Add a readiness check. It fails when it throws, returns `false`, or outlives `timeoutMs`. */
  register(name: string, check: ReadinessCheck, options?: { timeoutMs?: number }): void;
  markStarted(): void;
  markDraining(): void;
  readonly draining: boolean;
  readiness(): Promise<CheckResult>;
}

class CheckTimeout extends Error {}

export function createHealth({ defaultTimeoutMs = 2_000 }: { defaultTimeoutMs?: number } = {}): Health {
  const checks: { name: string; check: ReadinessCheck; timeoutMs: number }[] = [];
  let started = false;
  let draining = false;

  const run = async (entry: (typeof checks)[number]): Promise<string> => {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new CheckTimeout(`timed out after ${entry.timeoutMs} ms`);
        controller.abort(error);
        reject(error);
      }, entry.timeoutMs);
    });
    try {
      const result = await Promise.race([Promise.resolve().then(() => entry.check(controller.signal)), timeout]);
      return result === false ? 'down' : 'up';
    } catch (error) {
      return error instanceof CheckTimeout ? `down: ${error.message}` : 'down';
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    register(name, check, { timeoutMs = defaultTimeoutMs } = {}) {
      checks.push({ name, check, timeoutMs });
    },
    markStarted() {
      started = true;
    },
    markDraining() {
      draining = true;
    },
    get draining() {
      return draining;
    },
    async readiness() {
      const results: Record<string, string> = {};
      if (!started) results.startup = 'pending';
      if (draining) results.shutdown = 'draining';
      if (!started || draining) return { ok: false, checks: results };
      const outcomes = await Promise.all(checks.map(run));
      checks.forEach((entry, i) => {
        results[entry.name] = outcomes[i] as string;
      });
      return { ok: outcomes.every((outcome) => outcome === 'up'), checks: results };
    },
  };
}
