import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';

/** WebSocket clients for the tests: a well-behaved one (ws), and a raw one that misbehaves on purpose. */

export interface Client {
  ws: WebSocket;
  /** The 101's headers. */
  headers: IncomingMessage['headers'];
  messages: string[];
  /** Resolves with the first message that passes `predicate`. */
  next(predicate?: (message: string) => boolean): Promise<string>;
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens a socket; rejects with the refusal's status and body when the server does not upgrade. */
export function openSocket(port: number, path: string, headers: Record<string, string> = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers, perMessageDeflate: false });
    const messages: string[] = [];
    const waiters = new Set<() => void>();
    ws.on('message', (data, isBinary) => {
      messages.push(isBinary ? `<binary ${(data as Buffer).length}>` : String(data));
      for (const wake of [...waiters]) wake();
    });
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.once('close', (code, reason) => done({ code, reason: reason.toString() })),
    );
    const next = (predicate: (message: string) => boolean = () => true) =>
      new Promise<string>((found, failed) => {
        const check = () => {
          const message = messages.find(predicate);
          if (message !== undefined) {
            waiters.delete(check);
            found(message);
          }
        };
        waiters.add(check);
        check();
        void closed.then(({ code }) => {
          if (waiters.delete(check)) failed(new Error(`closed ${code} before the message; got ${messages.join('|')}`));
        });
      });
    ws.once('upgrade', (res) => {
      ws.once('open', () => resolve({ ws, headers: res.headers, messages, next, closed }));
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => reject(new Refused(res.statusCode ?? 0, res.headers, body)));
      // A refusal whose body is cut (the server exits mid-answer) ends in 'close' only.
      res.on('close', () => reject(new Refused(res.statusCode ?? 0, res.headers, body)));
    });
    ws.once('error', (error) => reject(error));
  });
}

export class Refused extends Error {
  constructor(
    readonly status: number,
    readonly headers: IncomingMessage['headers'],
    readonly body: string,
  ) {
    super(`refused with ${status}: ${body}`);
  }
}

/** The refusal of an upgrade that must fail. */
export async function refusedUpgrade(port: number, path: string, headers: Record<string, string> = {}) {
  try {
    const client = await openSocket(port, path, headers);
    client.ws.terminate();
  } catch (error) {
    if (error instanceof Refused) return error;
    throw error;
  }
  throw new Error(`${path} upgraded`);
}

/**
 * A client that completes the handshake over a bare socket, then does only what the test says: it
 * never answers a ping or a close on its own. `received` is every byte after the handshake.
 */
export async function rawSocket(port: number, path: string, extraHeaders = '') {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const key = randomBytes(16).toString('base64');
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
  );
  let buffered = Buffer.alloc(0);
  const head = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const text = buffered.subarray(0, end).toString('latin1');
      buffered = buffered.subarray(end + 4);
      resolve(text);
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed during the handshake: ${buffered.toString('latin1')}`)));
  });
  const chunks: Buffer[] = [buffered];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  return { socket, head, closed, received: () => Buffer.concat(chunks) };
}

/** A masked client frame (RFC 6455 §5.2): `opcode` 1 text, 8 close, 9 ping, 10 pong. */
export function clientFrame(opcode: number, payload: Buffer, { masked = true } = {}): Buffer {
  const length = payload.length;
  const header =
    length < 126
      ? Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | length])
      : Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | 126, length >> 8, length & 0xff]);
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((byte, i) => byte ^ (mask[i % 4] as number)));
  return Buffer.concat([header, mask, body]);
}

/** The close codes of the server's close frames in `bytes` (unmasked server frames). */
export function closeCodes(bytes: Buffer): number[] {
  const codes: number[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = (bytes[at] as number) & 0x0f;
    let length = (bytes[at + 1] as number) & 0x7f;
    let start = at + 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2);
      start += 2;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at + 2));
      start += 8;
    }
    if (opcode === 8 && length >= 2) codes.push(bytes.readUInt16BE(start));
    at = start + length;
  }
  return codes;
}

export type { Socket };
