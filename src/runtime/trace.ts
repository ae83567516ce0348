/**
 * Cloud Logging trace correlation: `logging.googleapis.com/trace` is
 * `projects/PROJECT/traces/TRACE_ID`, taken from W3C `traceparent` or from
 * Google's `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`. Without a project
 * id the field cannot be built, so nothing is added.
 */

const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/;
const CLOUD_TRACE = /^([\da-f]{32})(?:\/(\d{1,20}))?(?:;o=([01]))?$/i;

export interface TraceFields {
  'logging.googleapis.com/trace'?: string;
  'logging.googleapis.com/spanId'?: string;
  'logging.googleapis.com/trace_sampled'?: boolean;
}

export function traceFields(
  projectId: string | undefined,
  traceparent: string | undefined,
  cloudTraceContext: string | undefined,
): TraceFields | undefined {
  if (!projectId) return undefined;
  const w3c = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  if (w3c && !/^0+$/.test(w3c[1] ?? '')) {
    return {
      'logging.googleapis.com/trace': `projects/${projectId}/traces/${w3c[1]}`,
      'logging.googleapis.com/spanId': w3c[2] as string,
      'logging.googleapis.com/trace_sampled': (Number.parseInt(w3c[3] ?? '0', 16) & 1) === 1,
    };
  }
  const google = cloudTraceContext ? CLOUD_TRACE.exec(cloudTraceContext.trim()) : null;
  if (google) {
    const fields: TraceFields = {
      'logging.googleapis.com/trace': `projects/${projectId}/traces/${google[1]?.toLowerCase()}`,
    };
    // Cloud Logging wants the span id as 16 hex digits; this header carries it in decimal.
    if (google[2])
      fields['logging.googleapis.com/spanId'] = BigInt(google[2]).toString(16).padStart(16, '0').slice(-16);
    if (google[3]) fields['logging.googleapis.com/trace_sampled'] = google[3] === '1';
    return fields;
  }
  return undefined;
}
