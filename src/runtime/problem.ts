import { STATUS_CODES } from 'node:http';

/**
 * RFC 9457 problem details. Every 4xx/5xx the runtime or the app produces is
 * `application/problem+json` with `type`, `title`, `status`, `detail`, a
 * stable `code` and the request id. One error type, `HttpProblem`, carries
 * them from anywhere in a handler to the one error handler.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

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
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail: init.detail,
    code: init.code,
  };
  if (requestId) body.requestId = requestId;
  if (init.errors) body.errors = init.errors;
  return body;
}

export function problemResponse(status: number, init: ProblemInit, requestId?: string): Response {
  return new Response(JSON.stringify(problemBody(status, init, requestId)), {
    status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...init.headers },
  });
}
