import { resolve } from 'node:path';
import { ensurePinned } from './pinned-install.js';

/**
 * Node 24, the major of the runtime image, in a folder of its own
 * (.cache/node24), never in the project's node_modules where it would replace
 * the `node` npm scripts run. Installed from the npm registry on first use,
 * at the version pinned here.
 */
export const NODE24_VERSION = '24.21.0';
export const NODE24 = resolve('.cache/node24/node_modules/.bin/node');

export function ensureNode24(): string {
  return ensurePinned('node', NODE24_VERSION, 'node24');
}
