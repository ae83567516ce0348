import type { Context } from 'hono';
import { type SSEStreamingApi, streamSSE } from 'hono/streaming';
import * as v from 'valibot';
import { DrainStartedError, RequestAbortedError } from './abort-reasons.js';
import type { Logger } from './logger.js';
import { HttpProblem } from './problem.js';
import { cutConnectionOf, drainSignalOf, loggerOf, signalOf, type WithIncoming } from './request-context.js';

/**
 * Server-sent events that do the right thing through timeouts and the drain,
 * on Hono's `streamSSE`. What it adds:
 *   - one signal for the app's loop, aborted when the client goes, when the
 *     write timeout cuts it, or when the drain begins (drainSignalOf);
 *   - at the drain, the stream ends by itself, cleanly: a `retry:` hint (how
 *     soon to reconnect, to an instance that stays) and the end of the body,
 *     so the client resumes with `Last-Event-ID` and the drain exits 0;
 *   - a comment line every `heartbeatMs` while no event is sent, so a proxy's
 *     idle timeout (ALB: 60 s) does not cut a quiet stream, and a client that
 *     stopped reading is found by the write timeout (write-progress.ts);
 *   - an error in the app's loop is logged on the request's logger and ends
 *     the stream; its message is never sent (Hono's own `onError` path
 *     writes `e.message` to the client).
 * Events carry `id:` as the app sets them; `lastEventIdOf(c, schema)` reads
 * the header a reconnecting client sends, and a bad one is a 400 problem.
 */

export interface EventStreamOptions {
  /** The `retry:` hint sent when the drain ends the stream, in ms. */
  retryMs?: number;
  /** A comment line this often while nothing else is sent, in ms; 0 = none. */
  heartbeatMs?: number;
}

export type EventLoop = (stream: SSEStreamingApi, signal: AbortSignal) => Promise<void>;

const DEFAULT_RETRY_MS = 1_000;
const DEFAULT_HEARTBEAT_MS = 15_000;
// At the drain, how long the retry hint may wait for a client to take it.
const RETRY_WRITE_MS = 1_000;

export function streamEvents(c: Context, loop: EventLoop, options: EventStreamOptions = {}): Response {
  // HEAD: Hono answers it with this Response's status and headers and drops its body without
  // cancelling it, so a loop started here would run, unread, until the process exits (4 000 HEADs
  // left 4 000 loops running, RSS 58 -> 252 MB). The same headers, from a stream that ends at once.
  if (c.req.method === 'HEAD') return streamSSE(c, async () => {});
  const { retryMs = DEFAULT_RETRY_MS, heartbeatMs = DEFAULT_HEARTBEAT_MS } = options;
  const request = signalOf(c);
  const drain = drainSignalOf(c);
  const log = loggerOrConsole(c);
  return streamSSE(c, async (stream) => {
    const signal = AbortSignal.any([request, drain]);
    const ended = new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
      stream.onAbort(() => resolve());
    });
    let lastWrite = Date.now();
    const write = stream.write.bind(stream);
    stream.write = (input) => {
      lastWrite = Date.now();
      return write(input);
    };
    const heartbeat =
      heartbeatMs > 0
        ? setInterval(() => {
            if (Date.now() - lastWrite >= heartbeatMs) void stream.write(': keep-alive\n\n');
          }, heartbeatMs / 2)
        : undefined;
    // Caught here: once the stream has ended the loop may still settle, with nobody awaiting it.
    // Called from a promise, so a loop that throws at once is caught the same way (and the heartbeat cleared).
    const running = Promise.resolve()
      .then(() => loop(stream, signal))
      .catch((error: unknown) => {
        if (error instanceof RequestAbortedError || error instanceof DrainStartedError) return;
        if (signal.aborted && error === signal.reason) return;
        log.error('event stream failed', { error: error instanceof Error ? error.message : String(error) });
      });
    try {
      // The loop runs until it returns, or the stream must end: whichever is first.
      await Promise.race([running, ended]);
    } finally {
      clearInterval(heartbeat);
      if (request.aborted) {
        // The client is gone or was cut: abort, not close. Hono's close() would
        // mark the stream closed, its cancel would then skip the abort, and a
        // write of the loop's waiting on backpressure would never settle
        // (measured: the loop hung for good after a write timeout).
        stream.abort();
      } else if (drain.aborted && !stream.aborted) {
        // A client that stopped reading never takes the hint: its write would wait on backpressure
        // past the drain's deadline (an exit 1 for one idle tab). It gets RETRY_WRITE_MS, then the cut.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const sent = await Promise.race([
          stream.write(`retry: ${retryMs}\n\n`).then(() => true),
          new Promise<false>((resolve) => {
            timer = setTimeout(resolve, RETRY_WRITE_MS, false);
          }),
        ]);
        clearTimeout(timer);
        if (!sent) {
          log.warn('event stream cut at the drain: the client did not take the retry hint', {
            retryWriteMs: RETRY_WRITE_MS,
          });
          stream.abort();
          cutConnectionOf(c);
        }
      }
    }
  });
}

/** The request's logger; outside the runway server (`app.request()` in a test), the console. */
function loggerOrConsole(c: Context): Pick<Logger, 'error' | 'warn'> {
  try {
    return loggerOf(c);
  } catch {
    return { error: (message, fields) => console.error(message, fields), warn: () => {} };
  }
}

/**
 * The `Last-Event-ID` a reconnecting client sends, parsed by `schema`;
 * undefined when there is none. A value the schema refuses is a 400 problem.
 */
export function lastEventIdOf<const TSchema extends v.GenericSchema<string, unknown>>(
  c: WithIncoming & { req: { header(name: string): string | undefined } },
  schema: TSchema,
): v.InferOutput<TSchema> | undefined {
  const raw = c.req.header('last-event-id');
  if (raw === undefined || raw === '') return undefined;
  const parsed = v.safeParse(schema, raw);
  if (parsed.success) return parsed.output;
  throw new HttpProblem(400, {
    code: 'bad_last_event_id',
    detail: `Last-Event-ID is not an event id of this stream: ${parsed.issues[0]?.message ?? 'invalid'}`,
  });
}
