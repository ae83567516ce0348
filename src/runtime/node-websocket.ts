import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import { type RuntimeResponse, runtimeLines } from './node-response.js';
import { problemResponse } from './problem.js';
import { type RequestState, stateOf } from './request-context.js';
import { type ProblemAnswer, runtimeProblems } from './runtime-problems.js';
import type { SocketUpgrade } from './websocket.js';
import type { SocketHub, SocketLink, SocketSession } from './websocket-hub.js';

/**
 * WebSockets on the node edge, with `ws` (what @hono/node-server uses). Not
 * through @hono/node-server's own helper: it owns the server's 'upgrade'
 * event itself (createAdaptorServer) and so would bypass the edge, where an
 * upgrade request is served like any other (node-server.ts): through the
 * rate limit, the in-flight cap, the request id and the access line, with
 * the app's middleware (its auth) in front of upgradeWebSocket. The
 * handshake is ws's; ws enforces WEBSOCKET_MAX_MESSAGE_BYTES as frames
 * arrive (`maxPayload`: close 1009 before a byte more is buffered), answers
 * pings, and closes 1002/1007 on a malformed frame. Compression is off: a
 * compressed message is a decompression bomb against the message limit.
 * `ws` loads on the first upgrade, not at start: the cold start pays
 * nothing for an app without sockets.
 */

// The handshake's own headers, which the runtime's must not repeat.
const HANDSHAKE_HEADERS = new Set(['connection', 'upgrade', 'content-length', 'transfer-encoding', 'keep-alive']);

export interface NodeSockets {
  /**
   * What upgradeWebSocket takes `state`'s socket over with. `settle` is called once the response
   * object has let go of the socket: the request is over (upgraded: the socket is the hub's now).
   */
  offer(
    state: RequestState,
    socket: Socket,
    head: Buffer,
    settle: (state: RequestState, upgraded: boolean) => void,
  ): SocketUpgrade;
}

/** `refuse`: admission.ts's, which counts the refusal in the shedder's summary. */
export function createNodeSockets(hub: SocketHub, refuse: (reason: 'websockets') => ProblemAnswer): NodeSockets {
  let loading: Promise<WebSocketServer> | undefined;
  const server = () => {
    loading ??= import('ws').then(({ WebSocketServer }) => {
      const wss = new WebSocketServer({
        noServer: true,
        maxPayload: hub.settings.maxMessageBytes,
        perMessageDeflate: false,
        // The hub keeps the open sockets (for the drain); ws's own set would be a second.
        clientTracking: false,
      });
      // The 101 carries what every answer does: the request id, the security and RateLimit headers.
      wss.on('headers', (lines: string[], req: IncomingMessage) => {
        const res = stateOf(req)?.res;
        if (!res) return;
        const set = res.getHeaders();
        for (const line of runtimeLines(res as RuntimeResponse, set).split('\r\n')) if (line) lines.push(line);
        for (const [name, value] of Object.entries(set)) {
          if (value === undefined || HANDSHAKE_HEADERS.has(name)) continue;
          lines.push(`${name}: ${Array.isArray(value) ? value.join(', ') : value}`);
        }
      });
      return wss;
    });
    return loading;
  };

  return {
    offer(state, socket, head, settle) {
      return {
        origins: hub.settings.origins,
        refusal() {
          if (hub.accepts()) return undefined;
          state.refused = true;
          return refuse('websockets');
        },
        async upgrade(events) {
          const wss = await server();
          if (socket.destroyed) return problemResponse(499, runtimeProblems.clientGone().init, state.requestId);
          // The handshake is written straight to the socket: the response object lets go of it, and
          // what the app's middleware does with the Response returned below goes nowhere.
          state.res.detachSocket(socket);
          let ws: WebSocket | undefined;
          wss.handleUpgrade(state.req, socket, head, (opened) => {
            ws = opened;
          });
          if (!ws) {
            // ws refused it and answered 400 itself (the helper checked the handshake first: not seen).
            settle(state, false);
            return problemResponse(400, runtimeProblems.badHandshake('refused by ws').init, state.requestId);
          }
          const native = ws;
          // A keep-alive socket that served earlier requests still has node:http's idle timeout on it.
          socket.setTimeout(0);
          settle(state, true);
          const session = hub.session(link(native), events, {
            url: new URL(state.req.url ?? '/', `http://${state.req.headers.host ?? 'localhost'}`),
            requestId: state.requestId,
          });
          wire(native, session);
          return new Response(null);
        },
      };
    },
  };
}

// Outside offer(): the listeners' closures hold the socket and its session, not the request it came
// from (its response object, its headers), for as long as the socket lives.
function wire(ws: WebSocket, session: SocketSession) {
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    session.message(
      isBinary ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data.toString('utf8'),
      data.byteLength,
    );
  });
  ws.on('pong', session.alive);
  ws.on('close', (code: number, reason: Buffer) => session.closed(code, reason.toString('utf8')));
  ws.on('error', session.failed);
  session.opened();
}

function link(ws: WebSocket): SocketLink {
  return {
    send: (data) => ws.send(data),
    close: (code, reason) => ws.close(code, reason),
    terminate: () => ws.terminate(),
    abrupt: true,
    ping: () => ws.ping(),
    bufferedAmount: () => ws.bufferedAmount,
    get readyState() {
      return ws.readyState as 0 | 1 | 2 | 3;
    },
    protocol: ws.protocol,
    raw: ws,
  };
}
