import { RequestAbortedError } from './abort-reasons.js';
import type { Logger } from './logger.js';
import { clientIpOfState, type RequestState } from './request-context.js';
import { traceFields } from './trace.js';

/**
 * One access line per request, in Cloud Logging's `httpRequest` shape
 * (https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#HttpRequest).
 * Never a header value beyond the user agent, never a body: `Authorization`
 * and `Cookie` are not read here at all.
 */
export interface AccessLine {
  requestId: string;
  method: string | undefined;
  url: string | undefined;
  status: number;
  /** Why the runtime aborted the request's signal, if it did. */
  aborted: unknown;
  requestSize: string | undefined;
  responseSize: string | undefined;
  userAgent: string | undefined;
  remoteIp: string;
  startedAt: number;
  protocol: string;
  traceparent: string | undefined;
  cloudTrace: string | undefined;
}

/**
 * A request the runtime ended (client gone, a deadline) is an expected
 * outcome, logged once, here, at its own severity (abort-reasons.ts); else
 * the status decides.
 */
export function levelOf(status: number, aborted?: unknown) {
  if (aborted instanceof RequestAbortedError) return aborted.severity;
  return status >= 500 ? 'error' : status >= 400 && status !== 499 ? 'warn' : 'info';
}

export function writeAccessLine(log: Logger, line: AccessLine, projectId: string | undefined) {
  const level = levelOf(line.status, line.aborted);
  const entry = {
    requestId: line.requestId,
    ...(line.aborted instanceof RequestAbortedError && { outcome: line.aborted.name }),
    httpRequest: {
      requestMethod: line.method,
      requestUrl: line.url,
      status: line.status,
      requestSize: line.requestSize,
      responseSize: line.responseSize,
      userAgent: line.userAgent,
      remoteIp: line.remoteIp,
      latency: `${((Date.now() - line.startedAt) / 1000).toFixed(3)}s`,
      protocol: line.protocol,
    },
    ...traceFields(projectId, line.traceparent, line.cloudTrace),
  };
  // Cloud Logging shows the httpRequest summary; the message stays a constant.
  log[level]('request', entry);
}

/** The node:http server's line, read off the request and the finished response. */
export function logAccess(log: Logger, state: RequestState, projectId: string | undefined) {
  const { req, res } = state;
  const status = state.upgraded ? 101 : res.writableFinished ? res.statusCode : 499;
  // Build nothing for a line the level filters out.
  if (!log.enabled(levelOf(status, state.abortReason))) return;
  // @hono/node-server may set the length through Node's internal field, not a header.
  const responseSize =
    res.getHeader('content-length') ?? (res as { _contentLength?: number | null })._contentLength ?? undefined;
  writeAccessLine(
    log,
    {
      requestId: state.requestId,
      method: req.method,
      url: req.url,
      status,
      aborted: state.abortReason,
      requestSize: req.headers['content-length'],
      responseSize: responseSize === undefined ? undefined : String(responseSize),
      userAgent: req.headers['user-agent'],
      remoteIp: clientIpOfState(state),
      startedAt: state.startedAt,
      protocol: `HTTP/${req.httpVersion}`,
      traceparent: header(req.headers.traceparent),
      cloudTrace: header(req.headers['x-cloud-trace-context']),
    },
    projectId,
  );
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
