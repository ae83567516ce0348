import { type ServerResponse, STATUS_CODES } from 'node:http';
// A net.Server: node:http's, whatever its response class (node-response.ts).
import type { Server, Socket } from 'node:net';
import { createInFlight, type InFlightItems } from './in-flight.js';
import { problemBody } from './problem.js';
import type { RequestState } from './request-context.js';
import type { ProblemAnswer } from './runtime-problems.js';
import { securityHeaderLines } from './security-headers.js';

/**
 * node:http's connections as the node edge (node-server.ts) needs them, and
 * what no public API of node:http says about them: the requests of each
 * socket in order (more than one when pipelined), the drain's rule for
 * `Connection: close`, which connections are idle, and answers written
 * straight to a socket that has no response object.
 */

const queueKey = Symbol('runway.queue');
const endingKey = Symbol('runway.ending');
const clientErrorKey = Symbol('runway.clientError');
/**
 * After a refusal with bytes unread (a body, a header block past the limit) the socket stays
 * half-open this long, so the client reads the answer rather than a reset, then it goes.
 */
export const LINGER_MS = 1_000;
const FRESH_GRACE_MS = 50;
type QueuedSocket = Socket & {
  [queueKey]?: RequestState[];
  /** An answer that closes the socket went out: nothing after it may run. */
  [endingKey]?: boolean;
  /** A client error of this socket was handled (firstClientError). */
  [clientErrorKey]?: boolean;
  _httpMessage?: ServerResponse | null;
};

export interface Connections {
  readonly sockets: InFlightItems<Socket>;
  /** Resolves true once every connection has closed, false after `timeoutMs`. */
  wait(timeoutMs: number): Promise<boolean>;
  /** A request arrived on its socket. False when it must not run: an earlier answer closes the socket. */
  enqueue(state: RequestState, closing: boolean): boolean;
  dequeue(state: RequestState): void;
  /** The requests of a socket not yet finished, in order. */
  queueOf(socket: Socket): readonly RequestState[];
  /** The socket closes after the answers it owes: Connection: close on the last not yet sent. */
  closeAfterQueue(socket: Socket): void;
  /** `state`'s answer closes its socket and goes out now: nothing after it may run. */
  endWith(state: RequestState): void;
  /** The drain begins: requests not yet answered get Connection: close where that is safe; idle sockets go. */
  drain(): void;
  /** During the drain: closes `socket` (or every one) once it is idle. */
  closeIdle(socket?: Socket): void;
  /** The socket is a WebSocket now (node-websocket.ts): no longer a connection to drain or wait for. */
  handOver(socket: Socket): void;
}

/**
 * `finish(state)` ends a request as its response's 'close' would: Node 20 and
 * 22 never close a response queued behind another on a pipelined socket that
 * closed, so without it such a request stayed in flight, holding its slot,
 * for good (seen: 150 such clients left the cap at one request at a time).
 */
export function trackConnections(server: Server, finish: (state: RequestState) => void): Connections {
  const open = createInFlight<Socket>();
  let receiving: (() => ReadonlySet<Socket>) | undefined;

  server.on('connection', (socket: QueuedSocket) => {
    open.add(socket);
    socket.once('close', () => {
      open.remove(socket);
      const queue = socket[queueKey];
      if (queue) for (const state of [...queue]) finish(state);
    });
  });

  // Node ends a socket after the response that carries Connection: close and
  // drops the answers queued behind it. So a request behind an answer that
  // already went out with it could never be answered: it is not run, which
  // leaves it without an effect a client would retry (false). While closing,
  // the mark goes on the last request of the socket whose answer is not yet
  // written, moving to each later one that arrives: a client that keeps
  // pipelining is told to stop, and no answer it is owed is dropped. A
  // request behind another runs only once it reaches the head of the queue
  // (node-server.ts), so while closing the last is normally still unsent and
  // takes the mark; when every answer is already written, the socket is
  // closed once idle instead (closeIdle).
  const markForClose = (queue: RequestState[], closing: boolean): boolean => {
    const last = queue.at(-1);
    for (const earlier of queue) {
      if (earlier === last) break;
      if (earlier.closeMarked && earlier.res.headersSent) return false;
      if (closing && earlier.closeMarked) {
        earlier.res.removeHeader('connection');
        earlier.closeMarked = false;
      }
    }
    if (closing && last && !last.res.headersSent) {
      last.res.setHeader('connection', 'close');
      last.closeMarked = true;
    }
    return true;
  };

  // Idle: none of its requests is in flight (its answers all written) and
  // none has started arriving. The second is what no public API tells;
  // node:http's own list of its parsers does (a socket that has sent nothing
  // yet is on it too, and is idle). The list is read once per turn of the
  // loop at most: many answers finishing in a turn must not each walk it.
  let busyThisTurn: ReadonlySet<Socket> | undefined;
  const busy = () => {
    if (!busyThisTurn) {
      receiving ??= receivingSockets(server);
      busyThisTurn = receiving();
      setImmediate(() => {
        busyThisTurn = undefined;
      });
    }
    return busyThisTurn;
  };
  // A connection that has sent nothing yet (a load balancer's pre-opened
  // one) is on the parsers' list too: it is idle, unless its first bytes are
  // on their way. It gets FRESH_GRACE_MS for them, a poll of the loop or
  // two, rather than READ_HEADER_TIMEOUT_MS.
  const closeIdle = (sockets: Iterable<Socket>) => {
    const fresh: QueuedSocket[] = [];
    for (const socket of sockets as Iterable<QueuedSocket>) {
      if (socket[queueKey]?.length) continue;
      if (busy().has(socket)) {
        if (socket.bytesRead === 0) fresh.push(socket);
        continue;
      }
      socket.destroySoon();
    }
    if (fresh.length === 0) return;
    setTimeout(() => {
      for (const socket of fresh) if (socket.bytesRead === 0 && !socket[queueKey]?.length) socket.destroySoon();
    }, FRESH_GRACE_MS).unref();
  };

  return {
    sockets: open.items,
    wait: open.wait,
    enqueue(state, closing) {
      const socket = state.req.socket as QueuedSocket;
      if (socket[endingKey]) return false;
      const queue = socket[queueKey] ?? [];
      socket[queueKey] = queue;
      queue.push(state);
      // One request alone (the common case) has nothing earlier to look at.
      return (queue.length === 1 && !closing) || markForClose(queue, closing);
    },
    dequeue(state) {
      const queue = (state.req.socket as QueuedSocket)[queueKey];
      const at = queue?.indexOf(state) ?? -1;
      if (at !== -1) queue?.splice(at, 1);
    },
    queueOf: (socket) => (socket as QueuedSocket)[queueKey] ?? [],
    closeAfterQueue(socket) {
      const last = (socket as QueuedSocket)[queueKey]?.at(-1);
      if (!last) return void socket.destroySoon();
      if (!last.res.headersSent) {
        last.res.setHeader('connection', 'close');
        last.closeMarked = true;
        return;
      }
      last.res.once('finish', () => socket.destroySoon());
    },
    endWith(state) {
      state.res.setHeader('connection', 'close');
      state.closeMarked = true;
      (state.req.socket as QueuedSocket)[endingKey] = true;
    },
    drain() {
      for (const socket of open.items as Iterable<QueuedSocket>) {
        const queue = socket[queueKey];
        if (queue?.length) markForClose(queue, true);
      }
      closeIdle(open.items);
    },
    closeIdle: (socket) => closeIdle(socket ? [socket] : open.items),
    handOver(socket) {
      open.remove(socket);
    },
  };
}

/**
 * The sockets on which node:http is parsing a request (from its first byte
 * to its last): its internal ConnectionsList, what server.closeIdleConnections()
 * and the header timeout use. test/runtime/node-server.test.ts fails if a
 * Node.js release drops it; without it every socket counts as not receiving.
 */
function receivingSockets(server: Server): () => ReadonlySet<Socket> {
  const key = Object.getOwnPropertySymbols(server).find((symbol) => symbol.description === 'http.server.connections');
  const list = key && (server as unknown as Record<symbol, { active?: () => { socket: Socket }[] }>)[key];
  if (!list?.active) return () => new Set();
  const active = list.active.bind(list);
  return () => new Set(active().map((parser) => parser.socket));
}

/**
 * True the first time `socket` reports a client error. After a parse error node:http reports it
 * again on every later read of the socket: the first report is handled (answered, or the socket
 * closed), the others are not (a 'finish' listener per read behind a long stream grew the heap
 * without bound, and a second answer would follow the first).
 */
export function firstClientError(socket: Socket): boolean {
  const queued = socket as QueuedSocket;
  if (queued[clientErrorKey]) return false;
  queued[clientErrorKey] = true;
  return true;
}

/**
 * A problem written straight to a socket that has no response object (client errors), then closed.
 * It carries `requestId` like every answer: the request could not be read, so the id is a fresh one,
 * also on the log line that records it. A lingering close, as after a 413 (node-server.ts,
 * closeAfterAnswer): destroyed at once, with the client still sending (a header block past the
 * limit), the kernel answers its bytes with a reset that can wipe the answer before the client
 * reads it. So: FIN, and destroy after LINGER_MS at the latest. The socket goes on reading, so a
 * client that closes once it has the answer frees its descriptor at once (a flood of malformed
 * connections holds no more of them than before); what it still sends reaches node:http's failed
 * parser, whose reports firstClientError turns away.
 */
export function answerOnSocket(socket: Socket, { status, init }: ProblemAnswer, requestId: string) {
  const pendingResponse = (socket as QueuedSocket)._httpMessage;
  if (!socket.writable || pendingResponse?.headersSent) return void socket.destroy();
  const body = JSON.stringify(problemBody(status, init, requestId));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\n` +
      `Cache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n` +
      `X-Request-Id: ${requestId}\r\n${securityHeaderLines}\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
