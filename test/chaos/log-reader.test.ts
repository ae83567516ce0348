import { Agent, request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { type Bundle, describeLine, expectNone, fatalLines, startBundle, within } from './bundle.js';
import { chaosPostgres } from './database.js';
import { campaignRandom, type Random } from './random.js';

/**
 * A log reader that falls behind: the test stops reading the server's
 * stdout (the pipe fills, and the server's writes queue in its memory),
 * sends its requests, sends SIGTERM, and reads again only later, as
 * `node dist/server.js | (sleep 4; cat > pipe.log)` does. The drain's lines
 * and every access line must arrive; and a reader that never reads must
 * not hold the exit forever.
 */

const REQUESTS = 1_000;
// The report's `sleep 4`: the reader starts this long after the server.
const STALL_MS = 4_000;
// The shutdown budget with the test's settings is 0 + 5000 + 1000 ms; this is a generous bound over it.
const EXIT_BOUND_MS = 20_000;

async function traffic(server: Bundle, random: Random): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 20 });
  // Each of them has an access line (probes have none).
  const paths = ['/', '/nope', '/v1/notes'];
  let ok = 0;
  await Promise.all(
    Array.from(
      { length: REQUESTS },
      () =>
        new Promise<void>((resolve) => {
          const path = random.pick(paths);
          const req = request({ host: '127.0.0.1', port: server.port, path, agent }, (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200 || res.statusCode === 404 || res.statusCode === 401) ok++;
              resolve();
            });
            // A body cut by the timeout below ends in 'close' only.
            res.on('close', () => resolve());
          });
          req.setTimeout(10_000, () => req.destroy());
          req.on('error', () => resolve());
          req.end();
        }),
    ),
  );
  agent.destroy();
  return ok;
}

const accessLines = (server: Bundle) => server.logs.filter((line) => line.message === 'request').length;

/** Resolves once the server's stdout has ended (everything it wrote has been read). */
function stdoutEnded(server: Bundle): Promise<void> {
  const stdout = server.proc.stdout;
  if (!stdout || stdout.readableEnded) return Promise.resolve();
  return new Promise((resolve) => stdout.once('end', () => resolve()));
}

describe('a log reader that falls behind', () => {
  const postgresFor = chaosPostgres();

  it(`gets the drain's lines and all ${REQUESTS} access lines when it reads again ${STALL_MS / 1000} s late, and the exit is bounded`, async () => {
    const random = campaignRandom('log-reader');
    const db = await (await postgresFor()).database();
    const server = await startBundle({ DATABASE_URL: db.url });
    const stalledAt = Date.now();
    server.proc.stdout?.pause();
    const ok = await traffic(server, random);
    expect(ok, 'requests answered').toBe(REQUESTS);
    // The fault is real only if the reader is behind: most access lines have not arrived.
    expect(accessLines(server), 'access lines read while the reader stalls').toBeLessThan(REQUESTS / 2);
    server.proc.kill('SIGTERM');
    const exit = within(server.exited, EXIT_BOUND_MS + STALL_MS, 'the exit after SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, stalledAt + STALL_MS - Date.now())));
    server.proc.stdout?.resume();
    const { code } = await exit;
    await within(stdoutEnded(server), 10_000, "the end of the server's stdout");
    const messages = new Set(server.logs.map((line) => line.message));
    console.log(
      `log reader ${STALL_MS} ms late: ${accessLines(server)}/${REQUESTS} access lines arrived; ` +
        `"shutdown started" ${messages.has('shutdown started') ? 'arrived' : 'lost'}, ` +
        `"shutdown complete" ${messages.has('shutdown complete') ? 'arrived' : 'lost'}; exit ${code}`,
    );
    expectNone(fatalLines(server).map(describeLine), 'fatal log lines');
    expect(server.stderr(), 'stderr').toBe('');
    expectNone(
      ['shutdown started', 'shutdown complete'].filter((m) => !messages.has(m)),
      'drain lines lost',
    );
    expect(accessLines(server), 'access lines that arrived').toBe(REQUESTS);
    expect(code, 'exit code').toBe(0);
  });

  it('does not hold the exit for a reader that never reads again', async () => {
    const random = campaignRandom('log-reader, never read');
    const db = await (await postgresFor()).database();
    // The exit waits for the reader as long as the platform's grace allows (main.ts): a 10 s grace, as on Cloud Run.
    const server = await startBundle({ DATABASE_URL: db.url, TERMINATION_GRACE_MS: '10000' });
    server.proc.stdout?.pause();
    expect(await traffic(server, random), 'requests answered').toBe(REQUESTS);
    server.proc.kill('SIGTERM');
    const startedAt = Date.now();
    const { code, signal } = await within(
      server.exited,
      EXIT_BOUND_MS,
      'the exit after SIGTERM with a reader that never reads',
    );
    console.log(`log reader that never reads: exit ${code} ${Date.now() - startedAt} ms after SIGTERM`);
    server.proc.stdout?.resume();
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });
});
