import { cli } from '../src/cli.js';

// The `runway` command from its source, for this repository's own scripts (bin/runway.mjs runs lib's).
process.exitCode = await cli(process.argv.slice(2));
