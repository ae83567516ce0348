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

/** The body broke HTTP/1.1 (a garbled chunk, trailers too large): the client got 400 or 431. */
export class MalformedRequestError extends RequestAbortedError {
  readonly severity = 'warn';
  constructor(code: string | undefined) {
    super(`the request's body could not be read: ${code ?? 'malformed'}`);
    this.name = 'MalformedRequestError';
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

/** The client stopped taking its response (WRITE_TIMEOUT_MS, WRITE_MIN_RATE_BPS): the connection was destroyed. */
export class WriteTimeoutError extends RequestAbortedError {
  readonly severity = 'warn';
  constructor(ms: number) {
    super(`the client took too little of its response for ${ms} ms`);
    this.name = 'WriteTimeoutError';
  }
}

/**
 * The drain began (the listener closed): what `drainSignalOf(c)` aborts with.
 * Not an abort of the request: a stream should end cleanly now, so its
 * client reconnects to an instance that stays.
 */
export class DrainStartedError extends Error {
  constructor() {
    super('the server is draining: end long-lived responses so their clients reconnect elsewhere');
    this.name = 'DrainStartedError';
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
