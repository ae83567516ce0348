import { connect, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';

/**
 * A client on a plain TCP socket, for what only a misbehaving client does:
 * stop halfway through its headers or body, go away at any moment, with a
 * FIN (`destroy`) or a reset (`resetAndDestroy`).
 */

export interface RawRequest {
  head: Buffer;
  body: Buffer;
}

export function rawRequest(
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer; token?: string } = {},
): RawRequest {
  const body = Buffer.from(options.body ?? '');
  const headers: Record<string, string> = { host: '127.0.0.1', ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (body.length > 0) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] ??= String(body.length);
  }
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return { head: Buffer.from(`${method} ${path} HTTP/1.1\r\n${lines.join('')}\r\n`), body };
}

export interface RawClient {
  socket: Socket;
  received(): string;
  /** Resolves once the flushed bytes are handed to the kernel (or the socket failed). */
  write(bytes: Buffer | string): Promise<void>;
  /** Resolves with the first bytes of an answer, or undefined if the socket closed first. */
  firstData: Promise<string | undefined>;
  closed: Promise<void>;
  abort(kind: 'fin' | 'rst'): void;
  /** The status of the answer received, if any. */
  status(): number | undefined;
}

export function rawClient(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    let onFirst: (value: string | undefined) => void = () => {};
    const firstData = new Promise<string | undefined>((done) => {
      onFirst = done;
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      data += chunk;
      onFirst(data);
    });
    socket.on('error', () => {});
    const closed = new Promise<void>((done) =>
      socket.once('close', () => {
        onFirst(undefined);
        done();
      }),
    );
    onTestFinished(() => {
      socket.destroy();
    });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({
        socket,
        received: () => data,
        write: (bytes) =>
          new Promise<void>((done) => {
            if (socket.destroyed || !socket.writable) return done();
            socket.write(bytes, () => done());
          }),
        firstData,
        closed,
        abort(kind) {
          if (socket.destroyed) return;
          if (kind === 'rst') socket.resetAndDestroy();
          else socket.destroy();
        },
        status: () => {
          const match = /^HTTP\/1\.1 (\d{3})/.exec(data);
          return match ? Number(match[1]) : undefined;
        },
      });
    });
    socket.once('error', reject);
  });
}
