import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkWriteProgress, forgetWriteWindow } from '../../src/runtime/write-progress.js';

/**
 * The write timeout's rule (write-progress.ts) on the numbers a socket
 * reports, with the sweep's clock in the test's hands. On real sockets:
 * streams.test.ts and the attack suite's slow read.
 */

/** What a node:net socket tells: bytes handed to libuv, libuv's queue, Node's buffer. */
function socketReading() {
  const s = { _bytesDispatched: 0, _handle: { writeQueueSize: 0 }, writableLength: 0, bytesWritten: 0 };
  return {
    socket: s as unknown as Socket,
    /** The app wrote `bytes`; the kernel has not taken them. */
    write(bytes: number) {
      s._bytesDispatched += bytes;
      s._handle.writeQueueSize += bytes;
    },
    /** The kernel took `bytes` of what was queued. */
    take(bytes: number) {
      s._handle.writeQueueSize -= bytes;
    },
  };
}

const options = { writeTimeoutMs: 1_000, minBytesPerSecond: 240 };

describe('the write timeout, judged by progress', () => {
  it('never cuts a socket that owes nothing, however long the stream is quiet', () => {
    const { socket } = socketReading();
    for (let now = 0; now <= 3_600_000; now += 1_000) expect(checkWriteProgress(socket, now, options)).toBeUndefined();
  });

  it('cuts a client that took nothing for WRITE_TIMEOUT_MS while bytes waited', () => {
    const { socket, write } = socketReading();
    write(64 * 1024);
    expect(checkWriteProgress(socket, 0, options)).toBeUndefined();
    expect(checkWriteProgress(socket, 999, options)).toBeUndefined();
    expect(checkWriteProgress(socket, 1_000, options)).toBe('stalled');
  });

  it('never cuts a client that takes its stream at least at the minimum rate, for an hour', () => {
    const { socket, write, take } = socketReading();
    for (let now = 0; now <= 3_600_000; now += 100) {
      write(1_000);
      // Always behind by a few writes, always taking 1 000 bytes a tenth of a second.
      if (now >= 300) take(1_000);
      expect(checkWriteProgress(socket, now, options)).toBeUndefined();
    }
  });

  it('cuts the slow read: a client taking 16 bytes a second is under 240 B/s', () => {
    const { socket, write, take } = socketReading();
    write(1024 * 1024);
    let verdict: string | undefined;
    for (let now = 0; now <= 2_000 && !verdict; now += 100) {
      if (now % 1_000 === 0) take(16);
      verdict = checkWriteProgress(socket, now, options);
    }
    expect(verdict).toBe('too_slow');
  });

  it('cuts the slow read only for no progress at all when the minimum rate is 0', () => {
    const { socket, write, take } = socketReading();
    write(1024 * 1024);
    const any = { writeTimeoutMs: 1_000, minBytesPerSecond: 0 };
    for (let now = 0; now <= 10_000; now += 100) {
      if (now % 1_000 === 0) take(16);
      expect(checkWriteProgress(socket, now, any)).toBeUndefined();
    }
  });

  it('starts a new window once the socket owed nothing: a stream between events is not timed', () => {
    const { socket, write, take } = socketReading();
    write(100);
    expect(checkWriteProgress(socket, 0, options)).toBeUndefined();
    take(100);
    expect(checkWriteProgress(socket, 900, options)).toBeUndefined();
    write(100);
    // Owed again at 1 900: a fresh window, not one that began at 0.
    expect(checkWriteProgress(socket, 1_900, options)).toBeUndefined();
    expect(checkWriteProgress(socket, 2_800, options)).toBeUndefined();
    expect(checkWriteProgress(socket, 2_900, options)).toBe('stalled');
  });

  it('starts the next response on a keep-alive socket with a window of its own', () => {
    const { socket, write, take } = socketReading();
    // The first response's window began at 0 and its last bytes were still owed at its end.
    write(100);
    expect(checkWriteProgress(socket, 0, options)).toBeUndefined();
    take(100);
    forgetWriteWindow(socket);
    // An idle minute, no sweep; then the next response owes bytes.
    write(64 * 1024);
    expect(checkWriteProgress(socket, 60_000, options)).toBeUndefined();
    take(1_000);
    expect(checkWriteProgress(socket, 60_900, options)).toBeUndefined();
  });
});
