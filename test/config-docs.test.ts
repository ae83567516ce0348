import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeVariables } from '../src/config/describe.js';

function readmeTable(): { name: string; default: string; secret: boolean }[] {
  const readme = readFileSync('README.md', 'utf8');
  const start = readme.indexOf('<!-- config:start -->');
  const end = readme.indexOf('<!-- config:end -->');
  expect(start, 'README has a config:start marker').toBeGreaterThan(-1);
  return readme
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line.split(' | ').map((cell) => cell.replace(/^\| /, '').replace(/ \|$/, '').trim());
      return {
        name: (cells[0] ?? '').replaceAll('`', ''),
        default: (cells[1] ?? '').replaceAll('`', '').replace('—', ''),
        secret: cells[2] === 'yes',
      };
    });
}

describe('README configuration table', () => {
  it('lists exactly the variables of the schema, with their defaults and secrecy', () => {
    const fromSchema = describeVariables().map(({ name, default: value, secret }) => ({
      name,
      default: value,
      secret,
    }));
    expect(readmeTable(), 'README is out of date: run npm run docs:config').toEqual(fromSchema);
  });
});
