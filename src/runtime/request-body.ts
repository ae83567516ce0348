import type { IncomingMessage } from 'node:http';

/**
 * The body limit, enforced before the app sees the request. Hono's
 * `bodyLimit` middleware materialises a full `Request` on every route, GET
 * included (measured at 0.24x throughput, docs/benchmarks.md), and leaves
 * the rest of an oversized upload to be drained from the socket. Here:
 * - no body announced (most requests): nothing to do, nothing allocated;
 * - `Content-Length` over the limit: refused before a byte is read;
 * - otherwise the body is read, counted as it arrives, and cut the moment
 *   it passes the limit (chunked bodies included). A body within the limit
 *   is handed to @hono/node-server as `rawBody`, which it reads directly.
 */

export function announcesBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function declaredTooLarge(req: IncomingMessage, limit: number): boolean {
  const length = req.headers['content-length'];
  return length !== undefined && Number(length) > limit;
}

export type BodyOutcome = { ok: true; body: Buffer } | { ok: false; reason: 'too_large' | 'aborted' | 'no_memory' };

/**
 * `reserve` takes each chunk's bytes from the process-wide body budget
 * (body-budget.ts) as it arrives; when it refuses, reading stops with
 * `no_memory`. A body whose length was declared reserved it up front.
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  reserve: (bytes: number) => boolean = () => true,
): Promise<BodyOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (outcome: BodyOutcome) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onAbort);
      resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      const over: 'too_large' | 'no_memory' | undefined =
        size > limit ? 'too_large' : reserve(chunk.length) ? undefined : 'no_memory';
      if (over) {
        // Stop reading: what the client still sends is discarded by Node
        // once the answer is out, and the socket is closed soon after.
        req.pause();
        chunks.length = 0;
        finish({ ok: false, reason: over });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () =>
      finish({ ok: true, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size) });
    const onAbort = () => finish({ ok: false, reason: 'aborted' });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('close', onAbort);
  });
}
