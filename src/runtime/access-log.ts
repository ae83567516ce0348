import type { Logger } from './logger.js';
import { clientIpOfState, type RequestState } from './request-context.js';
import { traceFields } from './trace.js';

/**
 * One access line per request, in Cloud Logging's `httpRequest` shape
 * (https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#HttpRequest).
 * Never a header value beyond the user agent, never a body: `Authorization`
 * and `Cookie` are not read here at all.
 */
export function logAccess(log: Logger, state: RequestState, projectId: string | undefined) {
  const { req, res } = state;
  const status = res.writableFinished ? res.statusCode : 499;
  const level = status >= 500 ? 'error' : status >= 400 && status !== 499 ? 'warn' : 'info';
  // Build nothing for a line the level filters out.
  if (!log.enabled(level)) return;
  const latencyS = (Date.now() - state.startedAt) / 1000;
  // @hono/node-server may set the length through Node's internal field, not a header.
  const responseSize =
    res.getHeader('content-length') ?? (res as { _contentLength?: number | null })._contentLength ?? undefined;
  const entry = {
    requestId: state.requestId,
    httpRequest: {
      requestMethod: req.method,
      requestUrl: req.url,
      status,
      requestSize: req.headers['content-length'],
      responseSize: responseSize === undefined ? undefined : String(responseSize),
      userAgent: req.headers['user-agent'],
      remoteIp: clientIpOfState(state),
      latency: `${latencyS.toFixed(3)}s`,
      protocol: `HTTP/${req.httpVersion}`,
    },
    ...traceFields(projectId, header(req.headers.traceparent), header(req.headers['x-cloud-trace-context'])),
  };
  // Cloud Logging shows the httpRequest summary; the message stays a constant.
  log[level]('request', entry);
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
