import * as v from 'valibot';
import { HttpProblem } from './problem.js';

/**
 * Reads a JSON body and validates it: 415 for another media type, 400 for
 * malformed JSON, 422 listing every invalid field. The body was already read
 * by the runtime under BODY_LIMIT_BYTES, so this never waits on the socket.
 */
export async function readJson<const TSchema extends v.GenericSchema>(
  c: { req: { header(name: string): string | undefined; text(): Promise<string> } },
  schema: TSchema,
): Promise<v.InferOutput<TSchema>> {
  const type = c.req.header('content-type')?.split(';')[0]?.trim().toLowerCase() ?? '';
  if (type !== 'application/json' && !type.endsWith('+json')) {
    throw new HttpProblem(415, { code: 'unsupported_media_type', detail: 'send the body as application/json' });
  }
  let input: unknown;
  try {
    input = JSON.parse(await c.req.text());
  } catch {
    throw new HttpProblem(400, { code: 'malformed_json', detail: 'the body is not valid JSON' });
  }
  return validate(schema, input);
}

/** Validates anything (query, params, body) with one problem shape for failures. */
export function validate<const TSchema extends v.GenericSchema>(
  schema: TSchema,
  input: unknown,
): v.InferOutput<TSchema> {
  const result = v.safeParse(schema, input);
  if (result.success) return result.output;
  const errors = result.issues.map((issue) => ({
    field: v.getDotPath(issue) ?? '(body)',
    message: issue.message,
  }));
  throw new HttpProblem(422, { code: 'validation_failed', detail: 'some fields are invalid', errors });
}
