import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Node 24, the major of the runtime image, in a folder of its own
 * (.cache/node24), never in the project's node_modules where it would replace
 * the `node` npm scripts run. Installed from the npm registry on first use.
 */
export const NODE24 = resolve('.cache/node24/node_modules/.bin/node');

export function ensureNode24(): string {
  if (!existsSync(NODE24)) {
    execFileSync('npm', ['install', '--prefix', '.cache/node24', '--no-save', '--no-audit', '--no-fund', 'node@24'], {
      stdio: 'inherit',
    });
  }
  return NODE24;
}
