import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { env } from '../service/env.js';
import { describeVariables } from '../src/config/describe.js';
import { partsOf } from '../src/config/env-part.js';
import { composeEnv } from '../src/config/load.js';

/** The page that holds the variable table, between its config markers. */
const PAGE = 'docs/configuration.md';

function pageTable(): { name: string; part: string; default: string; secret: boolean }[] {
  const page = readFileSync(PAGE, 'utf8');
  const start = page.indexOf('<!-- config:start -->');
  const end = page.indexOf('<!-- config:end -->');
  expect(start, `${PAGE} has a config:start marker`).toBeGreaterThan(-1);
  expect(end, `${PAGE} has a config:end marker after it`).toBeGreaterThan(start);
  return page
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line.split(' | ').map((cell) => cell.replace(/^\| /, '').replace(/ \|$/, '').trim());
      return {
        name: (cells[0] ?? '').replaceAll('`', ''),
        part: cells[1] ?? '',
        default: (cells[2] ?? '').replaceAll('`', '').replace('—', ''),
        secret: cells[3] === 'yes',
      };
    });
}

describe('the configuration table of docs/configuration.md', () => {
  it('lists exactly the variables of the composed schema (runtime, postgres, notes), with their defaults and secrecy', () => {
    const fromSchema = describeVariables(composeEnv(partsOf(env)).parts).map(
      ({ name, part, default: value, secret }) => ({
        name,
        part,
        default: value,
        secret,
      }),
    );
    expect(pageTable(), `${PAGE} is out of date: run npm run docs:config`).toEqual(fromSchema);
  });
});
