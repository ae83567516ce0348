/**
 * Batches log lines into one write per event-loop turn. On Linux a write to
 * a stdout pipe is a syscall, and one per access line costs more than the
 * request it describes.
 *
 * Before the process exits, `drain()` writes what is batched and waits until
 * the stream has handed everything to the kernel. A stdout pipe is
 * non-blocking here: when its reader is behind, Node queues the writes in
 * memory, and `process.exit()` drops that queue (measured: 640 of 10 000
 * lines reached a reader that started 2 s late). The lines lost are the last
 * ones, the drain and the fatal error, which an operator needs most. The wait
 * is bounded by LOG_FLUSH_TIMEOUT_MS, so a reader that never reads cannot
 * hold the exit; the shutdown budget (config.ts) counts it.
 */
const MAX_BUFFER_CHARS = 64 * 1024;

export const LOG_FLUSH_TIMEOUT_MS = 500;

export interface LineStream {
  /** Node's Writable: the callback runs once this chunk, and so every one before it, is written. */
  write(chunk: string, callback?: (error?: Error | null) => void): unknown;
  /** Bytes queued in the stream, not yet accepted by the kernel. */
  readonly writableLength?: number;
}

export interface LineWriter {
  write(line: string): void;
  flush(): void;
  /** Flushes, then resolves once the stream has nothing queued, or after `timeoutMs`. */
  drain(timeoutMs?: number): Promise<void>;
}

export function createLineWriter(stream: LineStream): LineWriter {
  let buffer = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (buffer === '') return;
    const out = buffer;
    buffer = '';
    stream.write(out);
  };
  return {
    write(line) {
      buffer += line;
      if (buffer.length >= MAX_BUFFER_CHARS) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
    drain(timeoutMs = LOG_FLUSH_TIMEOUT_MS) {
      flush();
      return drained(stream, timeoutMs);
    },
  };
}

/** Resolves once `stream` has nothing queued (or failed), or after `timeoutMs`. */
export function drained(stream: LineStream, timeoutMs = LOG_FLUSH_TIMEOUT_MS): Promise<void> {
  if (!stream.writableLength) return Promise.resolve();
  return new Promise((resolve) => {
    // Not unref'd: it is what keeps the process alive while it waits.
    const timer = setTimeout(resolve, timeoutMs);
    // Writes are ordered: an empty one completes after everything queued before it.
    stream.write('', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
