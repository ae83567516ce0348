/**
 * Batches log lines into one write per event-loop turn. On Linux a write to
 * a stdout pipe is a blocking syscall, and one per access line costs more
 * than the request it describes. `flush()` runs on exit, so nothing logged
 * before `process.exit` is lost.
 */
const MAX_BUFFER_CHARS = 64 * 1024;

export interface LineWriter {
  write(line: string): void;
  flush(): void;
}

export function createLineWriter(stream: { write(chunk: string): unknown }): LineWriter {
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
  };
}
