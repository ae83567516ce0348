import { describe, expect, it } from 'vitest';
import { FIXTURE, startFixture } from '../helpers.js';
import { expectCleanExit, expectSurvived, tally, within } from './bundle.js';
import { campaignRandom } from './random.js';
import { type RawClient, rawClient } from './raw-client.js';

/**
 * Event streams (src/runtime/sse.ts on the fixture app) under clients that
 * misbehave at every stage: they leave mid-headers, before the first event,
 * mid-stream (FIN or RST), or stop reading a fast stream so the write timeout
 * must cut them; all the while well-behaved readers stream on. Then SIGTERM,
 * at a random moment of a last round: every reader must get its `retry:`
 * hint and a properly ended body, and the drain must find nothing left of
 * the aborted ones (a stream leaked in flight would hold it to the deadline:
 * exit 1 and an ERROR line).
 */

const ROUNDS = 3;
const RETRY_LINE = 'retry: 500\n\n';
// The end of a chunked body.
const TERMINATOR = '0\r\n\r\n';

type Behaviour =
  | 'reads'
  | 'leaves mid-headers'
  | 'leaves before the first event'
  | 'leaves mid-stream'
  | 'stops reading';
const BEHAVIOURS: Behaviour[] = [
  'reads',
  'leaves mid-headers',
  'leaves before the first event',
  'leaves mid-stream',
  'stops reading',
];

const head = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

interface Client {
  behaviour: Behaviour;
  client: RawClient;
}

describe('event streams under misbehaving clients and a drain', () => {
  it(`stay up through ${ROUNDS} rounds of aborts, then drain every reader with a retry hint and exit 0`, async () => {
    const random = campaignRandom('streams');
    const shutdownDelayMs = random.pick([0, 200]);
    const server = await startFixture(
      { WRITE_TIMEOUT_MS: '1000', GRACEFUL_TIMEOUT_MS: '5000', SHUTDOWN_DELAY_MS: String(shutdownDelayMs) },
      'started',
      { program: FIXTURE },
    );

    const start = async (behaviour: Behaviour): Promise<Client> => {
      // Drawn before the first await: clients start several at once, and CHAOS_SEED replays the draws.
      // Readers stay on small events: what they receive is kept for the end's check.
      const fast = behaviour === 'stops reading' || (behaviour === 'leaves mid-stream' && random.chance(0.5));
      const path = fast ? '/events?everyMs=2&bytes=32768' : `/events?everyMs=${random.int(5, 60)}`;
      const cut = random.int(1, head(path).length - 2);
      const kind = random.chance(0.5) ? 'fin' : 'rst';
      const events = random.int(1, 5);
      const client = await rawClient(server.port);
      if (behaviour === 'leaves mid-headers') {
        await client.write(head(path).slice(0, cut));
        client.abort(kind);
      } else if (behaviour === 'leaves before the first event') {
        await client.write(head(path));
        client.abort(kind);
      } else {
        await client.write(head(path));
        if (behaviour === 'stops reading') client.socket.pause();
        if (behaviour === 'leaves mid-stream') {
          await within(untilEvents(client, events), 10_000, `${events} events`);
          client.abort(kind);
        }
      }
      return { behaviour, client };
    };

    const readers: Client[] = [];
    const seen: Behaviour[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const batch = Array.from({ length: random.int(10, 30) }, () => random.pick(BEHAVIOURS));
      const clients = await within(Promise.all(batch.map(start)), 30_000, `round ${round}: clients`);
      seen.push(...batch);
      readers.push(...clients.filter((c) => c.behaviour === 'reads'));
      const stopped = clients.filter((c) => c.behaviour === 'stops reading');
      // The write timeout cuts each client that stopped reading its fast stream: the server says so.
      const cutsSoFar = seen.filter((b) => b === 'stops reading').length;
      await within(
        server.waitForLog(
          () => server.logs.filter((line) => line.message === 'write timeout, closing connection').length >= cutsSoFar,
        ),
        20_000,
        `round ${round}: ${stopped.length} clients that stopped reading cut by the write timeout`,
      );
      // Reading again, each finds its connection closed.
      for (const c of stopped) c.client.socket.resume();
      await within(
        Promise.all(stopped.map((c) => c.client.closed)),
        20_000,
        `round ${round}: the cut connections close`,
      );
      await expectSurvived({ ...server, pid: server.proc.pid as number }, `after round ${round} of stream aborts`);
    }

    // Readers stream on through every round: none was cut.
    for (const reader of readers) expect(reader.client.socket.destroyed, 'a reader was cut').toBe(false);
    const cuts = server.logs.filter((line) => line.message === 'write timeout, closing connection').length;
    const stoppedCount = seen.filter((b) => b === 'stops reading').length;
    expect(cuts).toBeGreaterThanOrEqual(stoppedCount);

    // The last round: SIGTERM while more clients arrive and leave.
    const last = Array.from({ length: random.int(5, 15) }, () => random.pick(BEHAVIOURS));
    const sigtermAfter = random.int(0, last.length);
    const lastClients = await Promise.all(
      last.map(async (behaviour, i) => {
        if (i === sigtermAfter) server.proc.kill('SIGTERM');
        return start(behaviour).catch(() => undefined);
      }),
    );
    if (sigtermAfter === last.length) server.proc.kill('SIGTERM');
    const exit = await within(server.exited, 15_000, 'the exit after SIGTERM');

    const endings = readers.map((r) => {
      const text = r.client.received();
      return text.endsWith(`${RETRY_LINE.length.toString(16)}\r\n${RETRY_LINE}\r\n${TERMINATOR}`)
        ? 'retry hint and a proper end'
        : `other: ${JSON.stringify(text.slice(-60))}`;
    });
    console.log(
      `streams: ${seen.length + last.length} clients (${JSON.stringify(tally([...seen, ...last]))}), ` +
        `SHUTDOWN_DELAY_MS=${shutdownDelayMs}, SIGTERM after ${sigtermAfter} of the last ${last.length}; ` +
        `${cuts} write-timeout cuts; readers before SIGTERM ${JSON.stringify(tally(endings))}; exit ${exit.code}`,
    );
    expectCleanExit(server, exit);
    expect(tally(endings)).toEqual({ 'retry hint and a proper end': readers.length });
    void lastClients;
  }, 180_000);
});

/** Resolves once the client has received `count` events. */
function untilEvents(client: RawClient, count: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if ((client.received().match(/\nid: /g) ?? []).length >= count) {
        client.socket.off('data', check);
        resolve();
      }
    };
    client.socket.on('data', check);
    check();
  });
}
