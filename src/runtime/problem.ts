/**
 * RFC 9457 problem details. Every 4xx/5xx the runtime or the app produces is
 * `application/problem+json` with `type`, `title`, `status`, `detail`, a
 * stable `code` and the request id. One error type, `HttpProblem`, carries
 * them from anywhere in a handler to the one error handler.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

// The titles of the statuses runway and the app answer with. A table here,
// not node:http's STATUS_CODES, so problem bodies are built the same on Bun and Deno.
export const STATUS_TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  417: 'Expectation Failed',
  422: 'Unprocessable Entity',
  428: 'Precondition Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  // nginx's name for it: not sent to anyone, it is the client that left.
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export interface FieldProblem {
  field: string;
  message: string;
}

export interface ProblemInit {
  code: string;
  detail: string;
  /** Per-field messages for validation errors. Never the raw parser output, never the input. */
  errors?: FieldProblem[];
  headers?: Record<string, string>;
}

export class HttpProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: FieldProblem[] | undefined;
  readonly headers: Record<string, string> | undefined;
  constructor(status: number, init: ProblemInit) {
    super(init.detail);
    this.name = 'HttpProblem';
    this.status = status;
    this.code = init.code;
    this.errors = init.errors;
    this.headers = init.headers;
  }
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId?: string;
  errors?: FieldProblem[];
}

export function problemBody(status: number, init: ProblemInit, requestId?: string): ProblemBody {
  const body: ProblemBody = {
    type: 'about:blank',
    title: STATUS_TITLES[status] ?? 'Error',
    status,
    detail: init.detail,
    code: init.code,
  };
  if (requestId) body.requestId = requestId;
  if (init.errors) body.errors = init.errors;
  return body;
}

/** The headers of every problem answer, on every edge: never cached, by a browser or by a proxy. */
export function problemHeaders(init: ProblemInit): Record<string, string> {
  return { ...init.headers, 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store' };
}

export function problemResponse(status: number, init: ProblemInit, requestId?: string): Response {
  return new Response(JSON.stringify(problemBody(status, init, requestId)), { status, headers: problemHeaders(init) });
}
