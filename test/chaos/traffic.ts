import { label, type Outcome, send } from './bundle.js';
import type { Random } from './random.js';

/**
 * Mixed API traffic at a steady pace (reads, plain creates, creates with an
 * Idempotency-Key in a transaction, updates), each request tagged with the
 * phase it started in, every create with a title of its own so the database
 * can be asked afterwards how many times it was stored. And a readiness
 * prober, as a load balancer polls /readyz.
 */

export type Op = 'list' | 'get' | 'create' | 'create-with-key' | 'patch';

export interface Sent {
  op: Op;
  phase: string;
  title?: string;
  body?: string;
  outcome: Outcome;
}

const OPS: Op[] = ['list', 'get', 'create', 'create', 'create-with-key', 'create-with-key', 'patch'];

export function startTraffic(
  port: number,
  options: { token: string; noteId: string; random: Random; prefix: string; everyMs?: number; maxInFlight?: number },
) {
  const { token, noteId, random, prefix, everyMs = 40, maxInFlight = 8 } = options;
  let phase = 'before';
  let inFlight = 0;
  let n = 0;
  const sent: Sent[] = [];
  const running = new Set<Promise<void>>();
  const waiters = new Set<() => void>();

  const fire = () => {
    if (inFlight >= maxInFlight) return;
    const op = random.pick(OPS);
    const startedIn = phase;
    const title = `${prefix}-${n++}`;
    let request: Parameters<typeof send>[1];
    let record: Omit<Sent, 'outcome'> = { op, phase: startedIn };
    switch (op) {
      case 'list':
        request = { path: '/v1/notes?limit=5', token };
        break;
      case 'get':
        request = { path: `/v1/notes/${noteId}`, token };
        break;
      case 'create': {
        const body = JSON.stringify({ title });
        request = { method: 'POST', path: '/v1/notes', token, body };
        record = { ...record, title, body };
        break;
      }
      case 'create-with-key': {
        const body = JSON.stringify({ title, body: 'with a key' });
        request = { method: 'POST', path: '/v1/notes', token, body, headers: { 'idempotency-key': title } };
        record = { ...record, title, body };
        break;
      }
      case 'patch':
        request = { method: 'PATCH', path: `/v1/notes/${noteId}`, token, body: JSON.stringify({ body: title }) };
        break;
    }
    inFlight++;
    const done = send(port, { ...request, timeoutMs: 15_000 }).then((outcome) => {
      inFlight--;
      sent.push({ ...record, outcome });
      for (const wake of waiters) wake();
    });
    running.add(done);
    void done.finally(() => running.delete(done));
  };
  let timer = setInterval(fire, everyMs);

  return {
    sent,
    setPhase(next: string) {
      phase = next;
    },
    /** Resolves once `count` requests started in `inPhase` have their outcome. */
    answered(inPhase: string, count: number) {
      return new Promise<void>((resolve) => {
        const check = () => {
          if (sent.filter((s) => s.phase === inPhase).length >= count) {
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      clearInterval(timer);
      await Promise.all(running);
    },
    resume() {
      clearInterval(timer);
      timer = setInterval(fire, everyMs);
    },
  };
}

/** Titles whose create was answered 2xx. */
export function acknowledged(sent: Sent[]): string[] {
  return sent.filter((s) => s.title && s.outcome.status >= 200 && s.outcome.status < 300).map((s) => s.title as string);
}

export type Readiness = ReturnType<typeof watchReadiness>;

/** `/readyz` polled on fresh connections, each poll bounded, one after the other. */
export function watchReadiness(port: number, everyMs = 200) {
  const samples: { at: number; status: number; body: string }[] = [];
  const waiters = new Set<() => void>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const outcome = await send(port, { path: '/readyz', timeoutMs: 5_000 });
      samples.push({ at: Date.now(), status: outcome.status, body: 'body' in outcome ? outcome.body : label(outcome) });
      for (const wake of waiters) wake();
      if (running) await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    samples,
    /** Resolves with the time of the first poll answered `status` that started after this call. */
    until(status: number): Promise<number> {
      const from = Date.now();
      return new Promise((resolve) => {
        const check = () => {
          const found = samples.find((s) => s.status === status && s.at >= from);
          if (found) {
            waiters.delete(check);
            resolve(found.at);
          }
        };
        waiters.add(check);
        check();
      });
    },
    /** Resolves once `count` more polls have been answered. */
    polled(count: number): Promise<void> {
      const target = samples.length + count;
      return new Promise((resolve) => {
        const check = () => {
          if (samples.length < target) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}
