import * as v from 'valibot';
import type { VariableMeta } from './primitives.js';
import { EnvSchema } from './variables.js';

/** What each variable is, for README's table (`npm run docs:config`) and for redaction. */

export interface VariableDoc {
  name: string;
  default: string;
  doc: string;
  secret: boolean;
  platform: boolean;
}

// Each variable is `v.optional(v.pipe(check, doc(...)), default)`: the doc is the metadata of the
// schema it wraps, read with valibot's own getters.
function describeVariable(
  schema: (typeof EnvSchema.entries)[keyof typeof EnvSchema.entries],
): Omit<VariableDoc, 'name'> {
  const meta = v.getMetadata(schema.wrapped) as Partial<VariableMeta>;
  const fallback = v.getDefault(schema) as string | undefined;
  return {
    default: meta.defaultText ?? fallback ?? '',
    doc: meta.doc ?? '',
    secret: meta.secret === true,
    platform: meta.platform === true,
  };
}

/** The variable table, derived from the schema (README is tested against it). */
export function describeVariables(): VariableDoc[] {
  return Object.entries(EnvSchema.entries).map(([name, schema]) => ({ name, ...describeVariable(schema) }));
}
