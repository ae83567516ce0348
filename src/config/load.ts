import * as v from 'valibot';
import { describeVariables } from './describe.js';
import { type EnvPart, EnvPartError } from './env-part.js';
import { type Config, runtimeConfigOf, runtimeEnv } from './schema.js';
import type { RuntimeEnv } from './variables.js';

/**
 * `loadEnv(env, parts)`: pure, reads only the object it is given. The
 * runtime's variables and every other part's (a module's, the app's) are
 * one schema, validated at once: every problem is collected and thrown once,
 * each naming its variable, what was expected and what was given, redacted:
 * never a password, never a key.
 */

/** Thrown by loadEnv with every problem found, already redacted. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export { EnvPartError };

export interface Composed {
  parts: EnvPart[];
  schema: v.GenericSchema<Record<string, string>, Record<string, unknown>>;
  names: string[];
  redaction: Map<string, 'secret' | 'url'>;
}

/** The runtime's part first, then the others in the order given; a variable declared twice throws. */
export function composeEnv(others: readonly EnvPart[] = []): Composed {
  const parts = [runtimeEnv, ...others];
  const owners = new Map<string, string>();
  const entries: Record<string, v.GenericSchema> = {};
  for (const part of parts) {
    if (part.schema?.type !== 'object') {
      throw new EnvPartError(`env part ${part.name}: expected a valibot v.object(...)`);
    }
    const rules: unknown = part.rules ?? [];
    if (!Array.isArray(rules) || !rules.every((rule) => typeof rule?.['~run'] === 'function')) {
      throw new EnvPartError(`env part ${part.name}: rules must be a list of valibot actions (v.check, v.forward, …)`);
    }
    for (const [name, schema] of Object.entries(part.schema.entries)) {
      const owner = owners.get(name);
      if (owner !== undefined) throw new EnvPartError(`${name} is declared by both ${owner} and ${part.name}`);
      // The environment holds strings: any other default is a mistake in the schema, not in the environment.
      const fallback = v.getDefault(schema as never) as unknown;
      if (fallback !== undefined && typeof fallback !== 'string') {
        throw new EnvPartError(
          `${name} (env part ${part.name}): its default must be a string, as the environment's values are`,
        );
      }
      owners.set(name, part.name);
      entries[name] = schema;
    }
  }
  const rules = parts.flatMap((part) => part.rules ?? []);
  const schema = v.pipe(v.object(entries), ...(rules as [])) as unknown as Composed['schema'];
  const redaction = new Map<string, 'secret' | 'url'>();
  for (const variable of describeVariables(parts)) {
    if (variable.url) redaction.set(variable.name, 'url');
    else if (variable.secret) redaction.set(variable.name, 'secret');
  }
  return { parts, schema, names: Object.keys(entries), redaction };
}

// A problem line stays one readable line, whatever the value (valibot's messages quote it).
const MAX_MESSAGE_CHARS = 600;

/**
 * `text` with the value of every secret or URL variable given cut out, however it is quoted. A check's
 * message (valibot's own say `but received "…"`), a transform's or a rule's error may quote any value.
 */
function redactSecrets(text: string, input: Record<string, string>, composed: Composed): string {
  let out = text;
  for (const [name, kind] of composed.redaction) {
    const value = input[name];
    if (value === undefined || value.length < 3) continue;
    for (const form of new Set([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)])) {
      out = out.split(form).join(kind === 'url' ? '(URL not shown)' : '(not shown)');
    }
  }
  return out.length > MAX_MESSAGE_CHARS ? `${out.slice(0, MAX_MESSAGE_CHARS)}…` : out;
}

/** What a check said of a variable: without the value it received when the variable is secret or a URL. */
function messageOf(issue: v.BaseIssue<unknown>, name: string, composed: Composed): string {
  if (!composed.redaction.has(name)) return issue.message;
  // valibot's default messages end `but received <the value>`: cut it, whatever the value's form.
  return issue.message.replace(/ but received .*$/s, '');
}

/** How a rejected value may be shown: never a password, never a key. */
export function showValue(value: unknown, redaction?: 'secret' | 'url'): string {
  if (value === undefined) return 'nothing';
  if (typeof value !== 'string') return typeof value;
  if (redaction === 'url') return redactUrl(value);
  if (redaction === 'secret') return `a value of ${Buffer.byteLength(value)} bytes (not shown)`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

export function redactUrl(value: string): string {
  const notShown = 'a value that is not a URL (not shown: it may hold a password)';
  try {
    const url = new URL(value);
    // Without an authority part the "password" may sit anywhere in the text.
    if (!url.host) return notShown;
    const user = url.username ? `${url.username}${url.password ? ':***' : ''}@` : '';
    // The query can carry `password=`: never shown.
    const query = url.search ? '?(query not shown)' : '';
    return JSON.stringify(`${url.protocol}//${user}${url.host}${url.pathname}${query}`);
  } catch {
    return notShown;
  }
}

/**
 * Pure: reads only the object it is given. Collects every problem of every part, then throws once.
 * Returns the runtime's Config and every variable's parsed value (`env`, typed by the caller).
 */
export function loadEnv<TEnv = Record<string, unknown>>(
  env: Record<string, string | undefined>,
  composed: Composed = composeEnv(),
): { config: Config; env: TEnv } {
  const input: Record<string, string> = {};
  for (const name of composed.names) {
    const value = env[name];
    // An empty variable is treated as unset, as shells and YAML make them easily.
    if (value !== undefined && value !== '') input[name] = value;
  }
  let result: ReturnType<typeof v.safeParse<Composed['schema']>>;
  try {
    result = v.safeParse(composed.schema, input);
  } catch (error) {
    // A transform or a rule of a part threw: its message may quote a value, secrets are cut out of it.
    const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new ConfigError([
      `(config): a check threw instead of reporting a problem: ${redactSecrets(what, input, composed)}`,
    ]);
  }
  if (result.success) {
    return { config: runtimeConfigOf(result.output as RuntimeEnv), env: result.output as TEnv };
  }
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const issue of result.issues) {
    const name = issue.path?.map((item) => String(item.key)).join('.') ?? '(config)';
    // One line per variable: a bad number fails several checks that say the same.
    if (seen.has(name)) continue;
    seen.add(name);
    // A required variable left unset fails its type check ("expected string, received undefined").
    const unset = issue.kind === 'schema' && issue.input === undefined;
    const message = unset ? 'is required' : messageOf(issue, name, composed);
    // Nothing was given to show: an unset variable, or a cross-field check on one left at its default.
    const given =
      unset || (issue.type === 'partial_check' && input[name] === undefined)
        ? ''
        : `, got ${showValue(input[name], composed.redaction.get(name))}`;
    problems.push(redactSecrets(`${name}: ${message}${given}`, input, composed));
  }
  throw new ConfigError(problems);
}

/** The runtime's variables alone. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  return loadEnv(env).config;
}
