/**
 * Why the runtime aborted a request's signal. Each is an expected outcome,
 * not a bug in the app: the app's error handler (hono-errors.ts) answers them
 * without an ERROR line, and the request's one access line carries the
 * outcome at `severity`. A forced drain has its own summary line as well
 * (lifecycle.ts), the one ERROR it deserves.
 */
export abstract class RequestAbortedError extends Error {
  /** The severity of the access line of a request that ended this way. */
  abstract readonly severity: 'info' | 'warn';
}

/** The client closed the connection before the response was sent: its choice, not a fault. */
export class ClientGoneError extends RequestAbortedError {
  readonly severity = 'info';
  constructor() {
    super('client closed the connection before the response was sent');
    this.name = 'ClientGoneError';
  }
}

/** READ_TIMEOUT_MS passed while the body was still arriving: the client got 408. */
export class RequestTimeoutError extends RequestAbortedError {
  readonly severity = 'warn';
  constructor(ms: number) {
    super(`request read timeout of ${ms} ms reached`);
    this.name = 'RequestTimeoutError';
  }
}

/** HANDLER_TIMEOUT_MS passed: the client got 503 `handler_timeout`. */
export class HandlerTimeoutError extends RequestAbortedError {
  readonly severity = 'warn';
  constructor(ms: number) {
    super(`handler deadline of ${ms} ms reached`);
    this.name = 'HandlerTimeoutError';
  }
}

/** WRITE_TIMEOUT_MS passed: the connection was destroyed. */
export class WriteTimeoutError extends RequestAbortedError {
  readonly severity = 'warn';
  constructor(ms: number) {
    super(`write timeout of ${ms} ms reached`);
    this.name = 'WriteTimeoutError';
  }
}

/** GRACEFUL_TIMEOUT_MS passed during the drain: requests still in flight are aborted. */
export class DrainTimeoutError extends RequestAbortedError {
  readonly severity = 'warn';
  constructor(ms: number) {
    super(`drain deadline of ${ms} ms reached`);
    this.name = 'DrainTimeoutError';
  }
}
