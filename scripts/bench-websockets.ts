import { WebSocket } from 'ws';
import { measured, type Program, rssMb, start, stop, waitFor200 } from './bench-lib.js';
import { freePort } from './free-port.js';

/**
 * WebSocket echo: `clients` sockets on GET /ws, each sending `messages`
 * text messages of ~100 bytes one after another, every one waiting for its
 * echo (runway's upgradeWebSocket, against @hono/node-server's with ws as its
 * README sets it up). Reported per server: echoed messages per second, server
 * CPU per message (utime + stime from /proc), peak RSS; then `idle` more
 * sockets opened and left silent, and the server's RSS per socket. Bounded:
 * 60 s per server at most.
 */

export interface SocketRow {
  server: string;
  clients: number;
  messages: number;
  seconds: number;
  messagesPerSecond: number;
  cpuUsPerMessage: number;
  peakRssMb: number;
  idleSockets: number;
  idleKbPerSocket: number;
  failed: number;
}

const BOUND_MS = 60_000;
const MESSAGE = 'x'.repeat(100);

export async function benchWebSockets(
  programs: Program[],
  clients = 200,
  messages = 500,
  idle = 2_000,
): Promise<SocketRow[]> {
  const rows: SocketRow[] = [];
  for (const program of programs) {
    const port = await freePort();
    const child = start(program, port);
    const open: WebSocket[] = [];
    try {
      await waitFor200(port, '/healthz', 10_000);
      const pid = child.pid as number;
      // One socket first: what loading `ws` costs is not the sockets'.
      open.push(await connectTo(port));
      const {
        result: echoed,
        seconds,
        ticks,
        peakRssMb,
      } = await measured(pid, () => Promise.all(Array.from({ length: clients }, () => echo(port, messages))));
      const total = echoed.reduce((sum, n) => sum + n, 0);
      const before = rssMb(pid);
      for (let i = 0; i < idle; i += 500) {
        open.push(...(await Promise.all(Array.from({ length: Math.min(500, idle - i) }, () => connectTo(port)))));
      }
      const after = rssMb(pid);
      rows.push({
        server: program.name,
        clients,
        messages: total,
        seconds,
        messagesPerSecond: total / seconds,
        cpuUsPerMessage: (ticks * 10_000) / Math.max(1, total),
        peakRssMb,
        idleSockets: idle,
        idleKbPerSocket: ((after - before) * 1024) / idle,
        failed: echoed.filter((n) => n < messages).length,
      });
    } finally {
      for (const ws of open) ws.terminate();
      await stop(child);
    }
  }
  return rows;
}

function connectTo(port: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** One client: resolves with the echoes it got before it finished (or the bound). */
async function echo(port: number, messages: number): Promise<number> {
  const ws = await connectTo(port);
  let echoed = 0;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, BOUND_MS);
    ws.on('message', () => {
      echoed++;
      if (echoed >= messages) {
        clearTimeout(timer);
        resolve();
      } else {
        ws.send(MESSAGE);
      }
    });
    ws.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.send(MESSAGE);
  });
  ws.terminate();
  return echoed;
}
