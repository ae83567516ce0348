import * as v from 'valibot';

/**
 * A group of environment variables, declared as a valibot object schema of
 * strings: the runtime's own (variables.ts), each opted-in module's
 * (runway/postgres) and the app's. `start` composes every part into one
 * schema and validates them all at once before anything listens (load.ts).
 */

/** What a variable's schema may say about itself, besides its checks (read back by describe.ts). */
export type VariableMeta = {
  doc?: string;
  /** Its value is never shown: not in an error, a log line or the docs. */
  secret?: boolean;
  /** A connection URL: shown with its password and query redacted (redactUrl). */
  url?: boolean;
  defaultText?: string;
  /** Set by the platform, not by the user. */
  platform?: boolean;
};

/** A variable's documentation (and secrecy), as valibot metadata in its pipe. */
export const doc = <T>(text: string, extra: Omit<VariableMeta, 'doc'> = {}) =>
  v.metadata<T, VariableMeta>({ doc: text, ...extra });

/** Marks a variable secret: its value is never shown. `v.pipe(v.string(), secret())`. */
export const secret = <T>() => v.metadata<T, VariableMeta>({ secret: true });

/** Any object schema whose entries take the environment's strings. */
// biome-ignore lint/suspicious/noExplicitAny: entries are checked one by one at run time (checkParts).
export type EnvEntries = Record<string, v.GenericSchema<any, unknown>>;
export type EnvSchema<TEntries extends EnvEntries = EnvEntries> = v.ObjectSchema<TEntries, undefined>;

/** A cross-variable rule, run on the whole parsed environment once every variable passed its own check. */
// biome-ignore lint/suspicious/noExplicitAny: a rule sees every part's variables, typed by whoever wrote it.
export type EnvRule = v.PipeAction<any, any, v.BaseIssue<unknown>>;

export interface EnvPart<TEntries extends EnvEntries = EnvEntries> {
  /** Who declares these variables: named in errors and in the generated docs. */
  name: string;
  schema: EnvSchema<TEntries>;
  rules?: readonly EnvRule[];
}

/** What an app may pass as its env: a part, a bare object schema (the app's), or several. */
export type EnvInput = EnvPart | EnvSchema | readonly (EnvPart | EnvSchema)[];

/** The parts of an app's env. A bare schema is named `app` (`app 1`, `app 2`, … when there are several). */
export function partsOf(input: EnvInput | undefined): EnvPart[] {
  if (input === undefined) return [];
  const list: unknown[] = Array.isArray(input) ? input : [input];
  const bare = list.filter((item) => !isPart(item)).length;
  let count = 0;
  return list.map((item) => {
    if (isPart(item)) return item;
    if (typeof item !== 'object' || item === null || !('type' in item)) {
      throw new EnvPartError(
        `env: expected a valibot v.object(...), an env part or a list of them, got ${kindOf(item)}`,
      );
    }
    count++;
    return { name: bare > 1 ? `app ${count}` : 'app', schema: item as EnvSchema };
  });
}

function isPart(item: unknown): item is EnvPart {
  return typeof item === 'object' && item !== null && 'schema' in item && 'name' in item;
}

function kindOf(item: unknown): string {
  if (item === null) return 'null';
  if (Array.isArray(item)) return 'a list';
  return typeof item === 'string' ? `the string ${JSON.stringify(item.slice(0, 40))}` : typeof item;
}

/** An env that is not one: a programming error, found before anything is parsed. */
export class EnvPartError extends Error {
  override name = 'EnvPartError';
}

/** The parsed values of one part. */
export type PartOutput<P> =
  P extends EnvPart<infer E>
    ? v.InferOutput<EnvSchema<E>>
    : P extends EnvSchema<infer E>
      ? v.InferOutput<EnvSchema<E>>
      : never;

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;

/** The parsed values of an app's env, every part's together. */
export type EnvOutput<T extends EnvInput | undefined> = T extends undefined
  ? Record<never, never>
  : T extends readonly (infer P)[]
    ? UnionToIntersection<PartOutput<P>>
    : PartOutput<T>;
