import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { describeVariables } from '../src/config/describe.js';
import { doc, EnvPartError, partsOf, secret } from '../src/config/env-part.js';
import { ConfigError, composeEnv, loadEnv } from '../src/config/load.js';

/**
 * An app's own variables, composed with the runtime's (load.ts): whatever the app's schema does, a
 * problem is one line naming its variable, a secret's value appears in none, and a schema that is not
 * one is a programming error named as such (EnvPartError), never a stack trace.
 */

function problemsOf(schema: unknown, env: Record<string, string>): string[] {
  try {
    loadEnv(env, composeEnv(partsOf(schema as never)));
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected loadEnv to throw');
}

const SECRET = 'hunter2-supersecret-value';

describe("an app's secret variables", () => {
  it('never appear in a check’s message, whichever valibot check refused them', () => {
    const problems = problemsOf(
      v.object({
        API_KEY: v.pipe(v.string(), v.regex(/^sk_[a-z]{40}$/), secret()),
        PICK: v.pipe(v.string(), secret(), v.picklist(['a', 'b'])),
        EMAIL: v.optional(v.pipe(v.string(), secret(), v.email())),
        UPSTREAM_URL: v.pipe(v.string(), doc('where to call', { url: true }), v.url()),
      }),
      { API_KEY: SECRET, PICK: `${SECRET}-pick`, EMAIL: `${SECRET}-mail`, UPSTREAM_URL: 'http://u:hunterD@[::1' },
    );
    expect(problems.map((p) => p.split(':')[0])).toEqual(['API_KEY', 'PICK', 'EMAIL', 'UPSTREAM_URL']);
    expect(problems.join('\n')).not.toContain('hunter');
    expect(problems[0]).toBe(
      `API_KEY: Invalid format: Expected /^sk_[a-z]{40}$/, got a value of ${SECRET.length} bytes (not shown)`,
    );
  });

  it('are found secret whether secret() sits inside a wrapper or in a pipe around one', () => {
    const schema = v.object({
      // biome-ignore lint/suspicious/noExplicitAny: the shape a hostile review tried, typed loosely in the wild.
      OUTER: v.pipe(v.optional(v.string()), secret(), v.minLength(32, 'expected 32 characters') as any),
      NULLISH: v.nullish(v.pipe(v.string(), secret(), v.minLength(32, 'expected 32 characters'))),
      UNDEFINEDABLE: v.undefinedable(v.pipe(v.string(), secret(), v.minLength(32, 'expected 32 characters'))),
    });
    const problems = problemsOf(schema, { OUTER: 'hunterA', NULLISH: 'hunterB', UNDEFINEDABLE: 'hunterF' });
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).not.toContain('hunter');
    const secrets = describeVariables(partsOf(schema)).map((variable) => [variable.name, variable.secret]);
    expect(secrets).toEqual([
      ['OUTER', true],
      ['NULLISH', true],
      ['UNDEFINEDABLE', true],
    ]);
  });

  it('stay hidden when a transform throws on one, or a rule quotes one: one problem line, no stack', () => {
    const throwing = v.object({ TOKEN_JSON: v.pipe(v.string(), secret(), v.transform(JSON.parse)) });
    const [thrown, ...more] = problemsOf(throwing, { TOKEN_JSON: 'hunter2json' });
    expect(more).toEqual([]);
    expect(thrown).toMatch(/^\(config\): a check threw instead of reporting a problem: SyntaxError: /);
    expect(thrown).not.toContain('hunter2json');
    const quoting = {
      name: 'app',
      schema: v.object({ KEY: v.pipe(v.string(), secret()) }),
      rules: [
        v.check((env: { KEY: string }) => {
          throw new Error(`cannot use ${env.KEY}`);
        }),
      ],
    };
    expect(problemsOf(quoting, { KEY: 'secretvalueK' })[0]).toBe(
      '(config): a check threw instead of reporting a problem: Error: cannot use (not shown)',
    );
  });
});

describe('problem lines', () => {
  it('stay one short line however long the value', () => {
    const schema = v.object({
      MODE: v.pipe(v.string(), v.picklist(['a', 'b'])),
      NAME: v.pipe(v.string(), v.regex(/^a$/)),
    });
    const problems = problemsOf(schema, { MODE: 'x'.repeat(100_000), NAME: 'y'.repeat(100_000) });
    expect(problems).toHaveLength(2);
    for (const problem of problems) expect(problem.length).toBeLessThan(700);
  });
});

describe('an env that is not one', () => {
  it.each([
    ['null', null, 'env: expected a valibot v.object(...), an env part or a list of them, got null'],
    ['a string', 'PORT', 'env: expected a valibot v.object(...), an env part or a list of them, got the string "PORT"'],
    ['a list holding null', [null], 'env: expected a valibot v.object(...), an env part or a list of them, got null'],
  ])('is refused with one line naming what it got: %s', (_, env, message) => {
    expect(() => partsOf(env as never)).toThrow(new EnvPartError(message));
  });

  it('is refused when its rules are not valibot actions, or a default is not a string', () => {
    const rules = { name: 'app', schema: v.object({}), rules: 'x' };
    expect(() => composeEnv(partsOf(rules as never))).toThrow(
      'env part app: rules must be a list of valibot actions (v.check, v.forward, …)',
    );
    const numeric = v.object({ RETRIES: v.optional(v.pipe(v.string(), v.transform(Number)), 5 as never) });
    expect(() => composeEnv(partsOf(numeric))).toThrow(
      "RETRIES (env part app): its default must be a string, as the environment's values are",
    );
  });

  it('names each of several bare schemas, so a variable declared twice says which', () => {
    const one = v.object({ A: v.optional(v.string()) });
    const two = v.object({ A: v.optional(v.string()) });
    expect(() => composeEnv(partsOf([one, two]))).toThrow('A is declared by both app 1 and app 2');
    expect(() => composeEnv(partsOf(v.object({ PORT: v.string() })))).toThrow(
      'PORT is declared by both runtime and app',
    );
  });
});
