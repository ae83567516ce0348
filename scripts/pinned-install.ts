import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Installs one npm package at an exact version into a folder of its own
 * under .cache/ (never the project's node_modules), and installs it again
 * when the folder holds another version: what the tests and the bench run
 * on must not depend on when .cache/ was filled.
 */
export function ensurePinned(name: string, version: string, folder: string): string {
  const prefix = resolve(`.cache/${folder}`);
  if (installedVersion(prefix, name) !== version) {
    execFileSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `${name}@${version}`], {
      stdio: 'inherit',
    });
  }
  return resolve(prefix, 'node_modules/.bin', name);
}

function installedVersion(prefix: string, name: string): string | undefined {
  try {
    return (
      JSON.parse(readFileSync(resolve(prefix, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }
    ).version;
  } catch {
    return undefined;
  }
}
