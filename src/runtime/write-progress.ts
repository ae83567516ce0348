import type { Socket } from 'node:net';

/**
 * The write timeout as progress, not as a bound on the whole response, so a
 * stream that flows for hours is never cut and a client that stops reading
 * is. nginx's `send_timeout` ("between two successive write operations, not
 * for the transmission of the whole response") and Kestrel's
 * `MinResponseDataRate` (240 bytes/s, measured only while the server waits
 * on the client) are the two halves:
 *
 *   - bytes are *owed* to a client while the socket holds what the app wrote
 *     and the kernel has not taken (Node's buffer, or libuv's write queue);
 *     a stream that is between events owes nothing, and is not timed;
 *   - every WRITE_TIMEOUT_MS that bytes are owed without a pause, the kernel
 *     must have taken at least WRITE_MIN_RATE_BPS × that time (at least one
 *     byte): otherwise the connection is cut. At rate 0 only a client that
 *     took nothing at all for WRITE_TIMEOUT_MS is cut; the default (240,
 *     Kestrel's) also cuts the slow-read attack, a client that takes a few
 *     bytes a second to hold its connection for hours.
 *
 * "Taken by the kernel" is libuv's count: bytes dispatched to the socket
 * less its write queue, which moves as a large write drains piece by piece
 * (Node's own `bytesWritten` counts bytes still queued). The fields are
 * Node's, read with a fallback; Bun and Deno give a server no socket, and
 * docs/runtimes.md's table says what they do instead.
 */

export interface WriteProgressOptions {
  writeTimeoutMs: number;
  /** Bytes per second the client must take while bytes are owed to it; 0 = any progress at all. */
  minBytesPerSecond: number;
}

export type WriteVerdict = 'stalled' | 'too_slow';

const windowKey = Symbol('runway.writeWindow');

interface Window {
  startedAt: number;
  takenAtStart: number;
}

type NodeSocket = Socket & {
  _bytesDispatched?: number;
  _handle?: { writeQueueSize?: number } | null;
  [windowKey]?: Window | undefined;
};

/** Bytes the kernel has taken from this socket, and whether more are waiting. */
function socketProgress(socket: Socket): { taken: number; owed: boolean } {
  const s = socket as NodeSocket;
  const queued = s._handle?.writeQueueSize ?? 0;
  const taken =
    typeof s._bytesDispatched === 'number' ? s._bytesDispatched - queued : socket.bytesWritten - socket.writableLength;
  return { taken, owed: socket.writableLength > 0 || queued > 0 };
}

/**
 * Called on every sweep for a socket with a response in flight: a verdict
 * when the client is too slow and the connection must go, else undefined.
 */
export function checkWriteProgress(
  socket: Socket,
  now: number,
  options: WriteProgressOptions,
): WriteVerdict | undefined {
  const s = socket as NodeSocket;
  const { taken, owed } = socketProgress(socket);
  if (!owed) {
    s[windowKey] = undefined;
    return undefined;
  }
  const window = s[windowKey];
  if (!window) {
    s[windowKey] = { startedAt: now, takenAtStart: taken };
    return undefined;
  }
  const elapsed = now - window.startedAt;
  if (elapsed < options.writeTimeoutMs) return undefined;
  const took = taken - window.takenAtStart;
  if (took <= 0) return 'stalled';
  if (took < (options.minBytesPerSecond * elapsed) / 1000) return 'too_slow';
  s[windowKey] = { startedAt: now, takenAtStart: taken };
  return undefined;
}

/**
 * Forgets the socket's window when a response ends: the next response on a
 * keep-alive socket starts its own, so time the socket spent idle between
 * them (no sweep looks at an idle socket) is never counted against it.
 */
export function forgetWriteWindow(socket: Socket): void {
  (socket as NodeSocket)[windowKey] = undefined;
}
