import { readFileSync, writeFileSync } from 'node:fs';
import { describeVariables } from '../src/config/describe.js';

/**
 * `npm run docs:config`: writes README's variable table from the config
 * schema, the one place defaults live. test/config-docs.test.ts fails when
 * they drift apart.
 */
const rows = describeVariables().map((v) => {
  const value = v.default ? `\`${v.default}\`` : '—';
  return `| \`${v.name}\` | ${value} | ${v.secret ? 'yes' : 'no'} | ${v.platform ? 'Set by the platform. ' : ''}${v.doc} |`;
});
const table = ['| variable | default | secret | meaning |', '|---|---|---|---|', ...rows].join('\n');
const readme = readFileSync('README.md', 'utf8');
const start = readme.indexOf('<!-- config:start -->');
const end = readme.indexOf('<!-- config:end -->');
if (start === -1 || end === -1) {
  console.error('README.md has no <!-- config:start --> / <!-- config:end --> markers');
  process.exit(1);
}
writeFileSync('README.md', `${readme.slice(0, start)}<!-- config:start -->\n${table}\n${readme.slice(end)}`);
console.log(`README.md: ${rows.length} variables`);
