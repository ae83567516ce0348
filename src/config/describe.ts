import * as v from 'valibot';
import type { EnvPart, VariableMeta } from './env-part.js';

/** What each variable is, for the generated docs (`npm run docs:config`) and for redaction. */

export interface VariableDoc {
  name: string;
  /** The part that declares it: runtime, postgres, app. */
  part: string;
  default: string;
  doc: string;
  required: boolean;
  secret: boolean;
  url: boolean;
  platform: boolean;
}

// A variable is `v.optional(v.pipe(check, doc(...)), default)` or, required, the pipe itself; and any of
// valibot's wrappers (optional, nullish, undefinedable, …) around a pipe, or a pipe around a wrapper.
// Its doc and marks are the metadata of every level, merged (valibot's getMetadata reads one level's pipe).
const WRAPPERS = new Set(['optional', 'exact_optional', 'nullish', 'undefinedable', 'nullable', 'non_optional']);

function levelsOf(schema: v.GenericSchema): v.GenericSchema[] {
  const levels: v.GenericSchema[] = [];
  for (let at: v.GenericSchema | undefined = schema; at; ) {
    levels.push(at);
    at = WRAPPERS.has(at.type) ? (at as unknown as { wrapped?: v.GenericSchema }).wrapped : undefined;
  }
  return levels;
}

function describeVariable(schema: v.GenericSchema): Omit<VariableDoc, 'name' | 'part'> {
  const levels = levelsOf(schema);
  const meta: Partial<VariableMeta> = {};
  let description: string | undefined;
  for (const level of levels.toReversed()) {
    Object.assign(meta, v.getMetadata(level as never));
    description = v.getDescription(level as never) ?? description;
  }
  const optional = levels.some(
    (level) =>
      level.type === 'optional' ||
      level.type === 'exact_optional' ||
      level.type === 'nullish' ||
      level.type === 'undefinedable',
  );
  const fallback = v.getDefault(schema as never) as string | undefined;
  return {
    default: meta.defaultText ?? fallback ?? '',
    doc: meta.doc ?? description ?? '',
    required: !optional,
    secret: meta.secret === true || meta.url === true,
    url: meta.url === true,
    platform: meta.platform === true,
  };
}

/** Every variable of the parts given, in order. */
export function describeVariables(parts: readonly EnvPart[]): VariableDoc[] {
  return parts.flatMap((part) =>
    Object.entries(part.schema.entries).map(([name, schema]) => ({
      name,
      part: part.name,
      ...describeVariable(schema as v.GenericSchema),
    })),
  );
}
