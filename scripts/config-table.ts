import { readFileSync, writeFileSync } from 'node:fs';
import { env } from '../service/env.js';
import { variableTable } from '../src/cli/env-table.js';
import { describeVariables } from '../src/config/describe.js';
import { partsOf } from '../src/config/env-part.js';
import { composeEnv } from '../src/config/load.js';

/**
 * `npm run docs:config`: writes the variable table of docs/configuration.md
 * from the composed schema (the runtime's variables, runway/postgres's and
 * the notes service's: service/env.ts), the one place defaults live.
 * test/config-docs.test.ts fails when they drift apart. The table is
 * `runway env service/server.ts`'s (src/cli/env-table.ts).
 */
const PAGE = 'docs/configuration.md';
const variables = describeVariables(composeEnv(partsOf(env)).parts);
const table = variableTable(variables);
const page = readFileSync(PAGE, 'utf8');
const start = page.indexOf('<!-- config:start -->');
const end = page.indexOf('<!-- config:end -->');
if (start === -1 || end === -1) {
  console.error(`${PAGE} has no <!-- config:start --> / <!-- config:end --> markers`);
  process.exit(1);
}
writeFileSync(PAGE, `${page.slice(0, start)}<!-- config:start -->\n${table}\n${page.slice(end)}`);
console.log(`${PAGE}: ${variables.length} variables`);
