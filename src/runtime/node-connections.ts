import { type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { createInFlight } from './in-flight.js';
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
type QueuedSocket = Socket & { [queueKey]?: RequestState[]; _httpMessage?: ServerResponse | null };

export interface Connections {
  readonly sockets: ReadonlySet<Socket>;
  /** Resolves true once every connection has closed, false after `timeoutMs`. */
  wait(timeoutMs: number): Promise<boolean>;
  /** A request arrived on its socket. False when it must not run: see markForClose. */
  enqueue(state: RequestState, closing: boolean): boolean;
  dequeue(state: RequestState): void;
  /** The request of a socket that is being read, first in line: what a 408 from node:http is about. */
  receivingRequest(socket: Socket): RequestState | undefined;
  /** The drain begins: requests not yet answered get Connection: close where that is safe; idle sockets go. */
  drain(): void;
  /** During the drain: closes `socket` (or every one) once it is idle. */
  closeIdle(socket?: Socket): void;
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

  // While closing, a response gets Connection: close only when it is the one
  // request of its socket. Node ends the socket after the response that has
  // it and drops the answers queued behind it, and on a pipelined socket the
  // answers behind are written, headers and all, as soon as their handlers
  // return: no later one can be marked instead. So a pipelined socket's
  // answers go out keep-alive and the socket is closed once idle. False when
  // an earlier answer of the socket already went out with Connection: close:
  // Node ends the socket after it, so a request behind it could never be
  // answered, and it is not run, so it has no effect a client would retry.
  const markForClose = (queue: RequestState[]): boolean => {
    const only = queue.length === 1 ? queue[0] : undefined;
    for (const earlier of queue) {
      if (earlier === queue.at(-1)) break;
      if (earlier.closeMarked && earlier.res.headersSent) return false;
      if (earlier.closeMarked) {
        earlier.res.removeHeader('connection');
        earlier.closeMarked = false;
      }
    }
    if (only && !only.res.headersSent) {
      only.res.setHeader('connection', 'close');
      only.closeMarked = true;
    }
    return true;
  };

  // Idle: none of its requests is in flight (its answers all written) and
  // none has started arriving. The second is what no public API tells;
  // node:http's own list of its parsers does.
  const closeIdle = (sockets: Iterable<Socket>) => {
    receiving ??= receivingSockets(server);
    const busy = receiving();
    for (const socket of sockets as Iterable<QueuedSocket>) {
      if (!socket[queueKey]?.length && !busy.has(socket)) socket.destroySoon();
    }
  };

  return {
    sockets: open.items,
    wait: open.wait,
    enqueue(state, closing) {
      const socket = state.req.socket as QueuedSocket;
      const queue = socket[queueKey] ?? [];
      socket[queueKey] = queue;
      queue.push(state);
      return !closing || markForClose(queue);
    },
    dequeue(state) {
      const queue = (state.req.socket as QueuedSocket)[queueKey];
      const at = queue?.indexOf(state) ?? -1;
      if (at !== -1) queue?.splice(at, 1);
    },
    receivingRequest: (socket) => (socket as QueuedSocket)[queueKey]?.[0],
    drain() {
      for (const socket of open.items as ReadonlySet<QueuedSocket>) {
        const queue = socket[queueKey];
        if (queue?.length) markForClose(queue);
      }
      closeIdle(open.items);
    },
    closeIdle: (socket) => closeIdle(socket ? [socket] : open.items),
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

/** A problem written straight to a socket that has no response object (client errors), then closed. */
export function answerOnSocket(socket: Socket, { status, init }: ProblemAnswer) {
  const pendingResponse = (socket as QueuedSocket)._httpMessage;
  if (!socket.writable || pendingResponse?.headersSent) return;
  const body = JSON.stringify(problemBody(status, init));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\n` +
      `Cache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n` +
      `${securityHeaderLines}\r\n${body}`,
  );
}
