/**
 * JSON lines in the shape Cloud Logging parses from stdout: `severity`,
 * `message`, `time`, everything else as fields. Messages are short lowercase
 * sentences; context goes into fields, never into the message.
 */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const severity: Record<LogLevel, string> = { debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR' };

export type Fields = Record<string, unknown>;
export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  enabled(level: LogLevel): boolean;
  child(fields: Fields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  write?: (line: string) => void;
  fields?: Fields;
}

/** Errors become `{ error: { name, message }, stack_trace }`: Error Reporting reads `stack_trace`. */
export function errorFields(error: unknown): Fields {
  if (error instanceof Error) {
    return { error: { name: error.name, message: error.message }, stack_trace: error.stack };
  }
  return { error: { message: String(error) } };
}

export function createLogger({ level = 'info', write = defaultWrite, fields = {} }: LoggerOptions = {}): Logger {
  const min = rank[level];
  const emit = (at: LogLevel, message: string, extra?: Fields) => {
    if (rank[at] < min) return;
    const entry = { severity: severity[at], message, time: new Date().toISOString(), ...fields, ...extra };
    write(`${safeStringify(entry)}\n`);
  };
  return {
    debug: (message, extra) => emit('debug', message, extra),
    info: (message, extra) => emit('info', message, extra),
    warn: (message, extra) => emit('warn', message, extra),
    error: (message, extra) => emit('error', message, extra),
    enabled: (at) => rank[at] >= min,
    child: (more) => createLogger({ level, write, fields: { ...fields, ...more } }),
  };
}

function defaultWrite(line: string) {
  process.stdout.write(line);
}

// A log call must never throw: a cyclic or BigInt field is replaced, not fatal.
function safeStringify(entry: Fields): string {
  try {
    return JSON.stringify(entry);
  } catch {
    return JSON.stringify({
      severity: entry.severity,
      message: entry.message,
      time: entry.time,
      logError: 'unserializable fields',
    });
  }
}
