import { connect } from 'node:net';
import { measured, type Program, start, stop, waitFor200 } from './bench-lib.js';
import { freePort } from './free-port.js';

/**
 * Server-sent events fanned out to many subscribers: each of `subscribers`
 * raw connections asks `GET /sse?count=N` and reads N events of ~100 bytes,
 * sent as fast as the stream takes them (each peer's own SSE helper: Hono's
 * `streamSSE` on plain serve(), runway's `streamEvents`). Reported per
 * server: events per second over the whole fan-out, server CPU per event
 * (utime + stime from /proc), peak RSS. Bounded: 60 s per server at most.
 */

export interface StreamRow {
  server: string;
  subscribers: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  cpuUsPerEvent: number;
  peakRssMb: number;
  incomplete: number;
}

const BOUND_MS = 60_000;

export async function benchStreams(programs: Program[], subscribers = 1_000, count = 300): Promise<StreamRow[]> {
  const rows: StreamRow[] = [];
  for (const program of programs) {
    const port = await freePort();
    const child = start(program, port);
    try {
      await waitFor200(port, '/healthz', 10_000);
      const pid = child.pid as number;
      const {
        result: received,
        seconds,
        ticks,
        peakRssMb,
      } = await measured(pid, () => Promise.all(Array.from({ length: subscribers }, () => subscribe(port, count))));
      const events = received.reduce((sum, n) => sum + n, 0);
      rows.push({
        server: program.name,
        subscribers,
        events,
        seconds,
        eventsPerSecond: events / seconds,
        cpuUsPerEvent: (ticks * 10_000) / Math.max(1, events),
        peakRssMb,
        incomplete: received.filter((n) => n < count).length,
      });
    } finally {
      await stop(child);
    }
  }
  return rows;
}

/** One subscriber: resolves with the events it read before the stream ended (or the bound). */
function subscribe(port: number, count: number): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let events = 0;
    let tail = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(events);
    };
    const timer = setTimeout(done, BOUND_MS);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(`GET /sse?count=${count} HTTP/1.1\r\nHost: bench\r\n\r\n`));
    socket.on('data', (chunk: string) => {
      const text = tail + chunk;
      events += (text.match(/\nid: /g) ?? []).length - (tail.match(/\nid: /g) ?? []).length;
      tail = text.slice(-8);
      // The end of the chunked body.
      if (text.endsWith('0\r\n\r\n')) done();
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}
