import * as v from 'valibot';
import { describeVariables } from './describe.js';
import { type Config, ConfigSchema } from './schema.js';
import { EnvSchema } from './variables.js';

/**
 * `loadConfig(env)`: pure, reads only the object it is given, collects every
 * problem and throws once, each naming its variable, what was expected and
 * what was given, redacted: never a password, never a key.
 */

/** Thrown by loadConfig with every problem found, already redacted. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const secretVariables = new Set(
  describeVariables()
    .filter((variable) => variable.secret)
    .map((variable) => variable.name),
);

/** How a rejected value may be shown: never a password, never a key. */
export function showValue(name: string, value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value !== 'string') return typeof value;
  if (name === 'DATABASE_URL') return redactUrl(value);
  if (secretVariables.has(name)) return `a value of ${Buffer.byteLength(value)} bytes (not shown)`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

export function redactUrl(value: string): string {
  const notShown = 'a value that is not a postgres URL (not shown: it may hold a password)';
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

/** Pure: reads only the object it is given. Collects every problem, then throws once. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.entries)) {
    const value = env[name];
    // An empty variable is treated as unset, as shells and YAML make them easily.
    if (value !== undefined && value !== '') input[name] = value;
  }
  const result = v.safeParse(ConfigSchema, input);
  if (result.success) return result.output;
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const issue of result.issues) {
    const name = issue.path?.map((item) => String(item.key)).join('.') ?? '(config)';
    // One line per variable: a bad number fails several checks that say the same.
    if (seen.has(name)) continue;
    seen.add(name);
    // A cross-field check on a variable left at its default has no given value to show.
    const given =
      issue.type === 'partial_check' && input[name] === undefined ? '' : `, got ${showValue(name, input[name])}`;
    problems.push(`${name}: ${issue.message}${given}`);
  }
  throw new ConfigError(problems);
}
