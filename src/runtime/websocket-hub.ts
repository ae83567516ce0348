import { WSContext, type WSMessageReceive } from 'hono/ws';
import { createInFlight } from './in-flight.js';
import { errorFields, type Logger } from './logger.js';
import type { SocketEvents } from './websocket.js';

/**
 * The WebSocket policy, written once for every edge: each edge's native
 * socket (ws on node, Bun's ServerWebSocket, Deno's WebSocket) is wrapped in
 * a SocketLink, and the edge turns its native events into calls on a
 * SocketSession. What the hub enforces:
 *   - WEBSOCKET_MAX_CONNECTIONS open sockets; an upgrade past it is a 503.
 *   - WEBSOCKET_MAX_MESSAGE_BYTES per message: close 1009 beyond it (ws and
 *     Bun refuse it as it arrives; Deno delivers it whole first, then the hub
 *     closes).
 *   - WEBSOCKET_IDLE_TIMEOUT_MS: a socket from which nothing arrived for half
 *     of it is pinged; one silent for all of it (a peer that vanished without
 *     a FIN, a client that stopped answering pings) is dropped. A connected
 *     client answers pings on its own, so an idle but live socket stays.
 *   - A client that stops reading: more than SEND_BUFFER_BYTES (or one
 *     maximum message, if larger) waiting for it and the socket is dropped,
 *     so what the app sends cannot pile up in memory without bound.
 *   - The drain: close 1001 "going away" to every socket (after the drain
 *     signal has aborted and the app's `onDrain` ran, so it may send a last message first), up to
 *     CLOSE_WAIT_MS for the closing handshakes, then what is left is dropped.
 *     A peer that does not answer a close is its own fault: the drain still
 *     exits 0, and the count of dropped sockets is logged.
 *   - An app handler that throws: ERROR line, close 1011.
 */

export interface SocketSettings {
  maxMessageBytes: number;
  idleTimeoutMs: number;
  maxConnections: number;
  /** Origins a browser may open a socket from besides the request's own host; `*` any (websocket.ts). */
  origins: readonly string[];
}

export const defaultSocketSettings: SocketSettings = {
  maxMessageBytes: 1024 * 1024,
  idleTimeoutMs: 60_000,
  maxConnections: 10_000,
  origins: [],
};

// Node 20 and 22 have no global CloseEvent (MessageEvent and Event they have). Looked up at the
// first close, not at load: on Node 24 the global is a lazy getter that loads the whole of Node's
// internal undici (fetch, Headers, Response), a third of the bundle's start-up (docs/benchmarks.md).
let CloseEventClass: typeof CloseEvent | undefined;
function closeEvent(init: CloseEventInit): CloseEvent {
  CloseEventClass ??=
    globalThis.CloseEvent ??
    class extends Event {
      readonly code: number;
      readonly reason: string;
      readonly wasClean: boolean;
      constructor(type: string, init: CloseEventInit = {}) {
        super(type, init);
        this.code = init.code ?? 0;
        this.reason = init.reason ?? '';
        this.wasClean = init.wasClean ?? false;
      }
    };
  return new CloseEventClass('close', init);
}

const encoder = new TextEncoder();

// The close codes an endpoint may send (RFC 6455 §7.4, IANA's registry): 1004-1006 and 1015 are reserved.
function sendableCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
  );
}

// How long the drain waits for the closing handshakes before dropping the sockets left.
export const CLOSE_WAIT_MS = 2_000;
// A socket counted at its upgrade that has not opened after this never will (its client left before
// the 101 went out, on Deno, which then reports nothing): it stops counting.
export const OPEN_WAIT_MS = 10_000;
// Bytes the app may have waiting for a client that does not read, beyond one maximum message.
export const SEND_BUFFER_BYTES = 1024 * 1024;

/** Bytes waiting for a client past which it is dropped as not reading. */
export const sendLimitOf = (settings: SocketSettings) => Math.max(SEND_BUFFER_BYTES, settings.maxMessageBytes);

/** An edge's native socket, as the hub drives it. */
export interface SocketLink {
  send(data: string | ArrayBuffer | Uint8Array): void;
  close(code: number, reason: string): void;
  /** Drops the connection without a closing handshake, or as near as the runtime allows (`abrupt`). */
  terminate(): void;
  /** Whether terminate() ends the connection at once; Deno's only sends a close frame (deno-server.ts). */
  readonly abrupt: boolean;
  /** Sends a ping; undefined where the runtime pings on its own (Deno's `idleTimeout`). */
  ping: (() => void) | undefined;
  bufferedAmount(): number;
  readonly readyState: 0 | 1 | 2 | 3;
  readonly protocol: string;
  readonly raw: unknown;
}

/** What an edge calls from its native socket's events. */
export interface SocketSession {
  opened(): void;
  message(data: WSMessageReceive, bytes: number): void;
  /** Anything arrived that is not a message: a pong. */
  alive(): void;
  closed(code: number, reason: string): void;
  failed(error: unknown): void;
}

export interface SocketHub {
  readonly settings: SocketSettings;
  /** Sockets given up before they opened (OPEN_WAIT_MS, or the drain): their runtime may still hold them. */
  readonly abandoned: number;
  /** Whether a new socket may open now: not at the cap, not draining. */
  accepts(): boolean;
  /**
   * A socket whose handshake is done (or under way): it counts from now until `closed`, or until
   * OPEN_WAIT_MS if it never `opened`.
   */
  session(link: SocketLink, events: SocketEvents, meta: SessionMeta): SocketSession;
  /** Close 1001 to every socket; those left after CLOSE_WAIT_MS are dropped. */
  drain(): void;
  /** Resolves true once every socket has closed, false after `timeoutMs`. */
  wait(timeoutMs: number): Promise<boolean>;
  /** Drops every socket left; resolves to how many there were. */
  terminateAll(): number;
}

export interface SessionMeta {
  url: URL;
  requestId: string;
}

interface Live {
  link: SocketLink;
  /** When something last arrived, as the sweep saw it: `heard` is set per frame, read per sweep. */
  lastSeen: number;
  heard: boolean;
  openedAt: number;
  requestId: string;
  opened: boolean;
  closed: boolean;
  /** The app's onDrain, run before the 1001. */
  onDrain: (() => void) | undefined;
  /** The app's onClose, run once: when the runtime reports the close, or when the hub gives up on it. */
  end: ((code: number, reason: string) => void) | undefined;
}

export function createSocketHub(settings: SocketSettings, log: Logger): SocketHub {
  const live = createInFlight<Live>();
  let draining = false;
  let abandoned = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  const sendLimit = sendLimitOf(settings);

  // One sweep for every socket, not a timer each: 10 000 idle sockets cost one timer.
  const sweep = () => {
    const now = Date.now();
    for (const socket of live.items) {
      if (!socket.opened) {
        if (now - socket.openedAt >= OPEN_WAIT_MS) forget(socket);
        continue;
      }
      // Deno's sockets ping on their own (deno-server.ts): their pongs never reach the hub.
      if (!socket.link.ping) continue;
      if (socket.heard) {
        socket.heard = false;
        socket.lastSeen = now;
      }
      const silent = now - socket.lastSeen;
      if (silent >= settings.idleTimeoutMs) {
        log.debug('websocket silent past its idle timeout, dropped', { requestId: socket.requestId, silentMs: silent });
        drop(socket);
      } else if (silent >= settings.idleTimeoutMs / 2 && socket.link.readyState === 1) {
        socket.link.ping?.();
      }
    }
  };
  const startSweep = () => {
    if (timer) return;
    timer = setInterval(sweep, Math.max(10, Math.floor(settings.idleTimeoutMs / 4)));
    timer.unref();
  };
  // `reported`: the runtime said it closed; else the hub gave up on it. `later`: the app's own call
  // (a send) is on the stack: its onClose runs once that call has returned, not inside it.
  const forget = (socket: Live, reported = false, later = false) => {
    if (socket.closed) return;
    socket.closed = true;
    if (!socket.opened && !reported) abandoned++;
    live.remove(socket);
    if (live.items.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
    // Given up on (a peer deaf to the drain's 1001, a silent or non-reading one): the runtime reports
    // the close later, if at all (the process may exit first), so the app hears of it now, as 1006.
    const end = socket.end;
    if (reported || !socket.opened || !end) return;
    if (later) queueMicrotask(() => end(1006, ''));
    else end(1006, '');
  };
  // A socket whose runtime cannot end it at once (Deno) still counts until it reports closed: its
  // connection and what is buffered for it are still there, and the cap is what bounds them.
  const drop = (socket: Live, always = false, later = false) => {
    try {
      socket.link.terminate();
    } finally {
      if (socket.link.abrupt || always) forget(socket, false, later);
    }
  };

  return {
    settings,
    get abandoned() {
      return abandoned;
    },
    accepts: () => !draining && live.items.size < settings.maxConnections,
    session(link, events, { url, requestId }) {
      const now = Date.now();
      const socket: Live = {
        link,
        lastSeen: now,
        heard: false,
        openedAt: now,
        requestId,
        opened: false,
        closed: false,
        onDrain: undefined,
        end: undefined,
      };
      live.add(socket);
      startSweep();
      const context = new WSContext<unknown>({
        send(data) {
          if (link.readyState !== 1) return;
          link.send(data as string | ArrayBuffer | Uint8Array);
          if (link.bufferedAmount() > sendLimit) {
            log.warn('websocket client not reading, dropped', { requestId, bufferedBytes: link.bufferedAmount() });
            drop(socket, false, true);
          }
        },
        // A code a peer may not send (1005, 999) or a reason over 123 bytes: ws throws (maybe in the
        // app's own timer, where nothing would catch it), Bun and Deno each do something else. The
        // same on all three instead: the socket closes 1011, with a WARNING.
        close(code = 1000, reason = '') {
          if (sendableCode(code) && encoder.encode(reason).byteLength <= 123) return link.close(code, reason);
          log.warn('websocket closed with an invalid code or reason, 1011 sent instead', { requestId, code });
          link.close(1011, 'internal error');
        },
        raw: link.raw,
        get readyState() {
          return link.readyState;
        },
        url,
        protocol: link.protocol,
      });
      // An app handler that throws (or rejects) is a bug: logged, and the socket closes 1011.
      const fail = (name: string, error: unknown) => {
        log.error('websocket handler failed', { requestId, handler: name, ...errorFields(error) });
        if (link.readyState === 1) link.close(1011, 'internal error');
      };
      const failMessage = (error: unknown) => fail('onMessage', error);
      const run = (name: string, call: () => unknown) => {
        try {
          const result = call();
          if (result instanceof Promise) result.catch((error: unknown) => fail(name, error));
        } catch (error) {
          fail(name, error);
        }
      };
      if (events.onDrain) socket.onDrain = () => run('onDrain', () => events.onDrain?.(context));
      // Once it ended, nothing more reaches the app: ws goes on parsing the chunk it was reading
      // when the hub dropped the socket, and its frames would arrive after onClose.
      let ended = false;
      socket.end = (code, reason) => {
        if (ended) return;
        ended = true;
        log.debug('websocket closed', { requestId, code, durationMs: Date.now() - socket.openedAt });
        if (events.onClose)
          run('onClose', () => events.onClose?.(closeEvent({ code, reason, wasClean: code !== 1006 }), context));
      };
      return {
        opened() {
          socket.opened = true;
          socket.lastSeen = Date.now();
          if (events.onOpen) run('onOpen', () => events.onOpen?.(new Event('open'), context));
        },
        // The hot path: no closure per message, no clock read (the sweep reads `heard`).
        message(data, bytes) {
          if (ended) return;
          socket.heard = true;
          if (bytes > settings.maxMessageBytes) {
            link.close(1009, 'message too big');
            return;
          }
          const onMessage = events.onMessage;
          if (!onMessage) return;
          try {
            const result: unknown = onMessage(new MessageEvent('message', { data }), context);
            if (result instanceof Promise) result.catch(failMessage);
          } catch (error) {
            failMessage(error);
          }
        },
        alive() {
          socket.heard = true;
        },
        closed(code, reason) {
          forget(socket, true);
          // Deno reports 0 for a connection it dropped: no close frame came, which is 1006.
          socket.end?.(code === 0 ? 1006 : code, reason);
        },
        failed(error) {
          if (ended) return;
          log.debug('websocket error', { requestId, ...errorFields(error) });
          if (events.onError) run('onError', () => events.onError?.(new Event('error'), context));
        },
      };
    },
    drain() {
      draining = true;
      const left = [...live.items];
      for (const socket of left) {
        try {
          // Its last word first; one that never opened (Deno) has nothing to say and is failed.
          if (socket.opened) socket.onDrain?.();
          socket.link.close(1001, 'going away');
        } catch {
          drop(socket, true);
        }
      }
      if (left.length === 0) return;
      // Then the process may go: what did not answer its close is forgotten, whether or not the
      // runtime could end its connection (the exit does).
      setTimeout(() => {
        let dropped = 0;
        for (const socket of [...live.items]) {
          dropped++;
          drop(socket, true);
        }
        if (dropped > 0) log.info('websockets dropped after the close wait', { dropped, closeWaitMs: CLOSE_WAIT_MS });
      }, CLOSE_WAIT_MS).unref();
    },
    wait: live.wait,
    terminateAll() {
      const left = live.items.size;
      for (const socket of [...live.items]) drop(socket, true);
      return left;
    },
  };
}
