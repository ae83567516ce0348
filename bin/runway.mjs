#!/usr/bin/env node
// The `runway` command (src/cli.ts, built into lib/ by `npm run build:lib`).
import { cli } from '../lib/cli.js';

process.exitCode = await cli(process.argv.slice(2));
