import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ensureNode24 } from './node24.js';

/**
 * The runtimes runway runs on besides the Node that runs npm: Node 24 (the
 * image's major), Bun and Deno, each installed from the npm registry into a
 * folder of its own under .cache/, never into the project's node_modules.
 */
export interface Runtime {
  name: 'node' | 'node24' | 'bun' | 'deno';
  /** The command line that runs a JavaScript file. */
  command(file: string): [string, ...string[]];
}

// Deno gets the narrowest permissions that work: the network and the
// environment. No file reads (the bundle is the main module), no subprocesses,
// no system info. README lists the same flags.
export const DENO_FLAGS = ['run', '--no-prompt', '--allow-net', '--allow-env'];

function ensurePackage(name: string, folder: string): string {
  const bin = resolve(`.cache/${folder}/node_modules/.bin/${name}`);
  if (!existsSync(bin)) {
    execFileSync('npm', ['install', '--prefix', `.cache/${folder}`, '--no-save', '--no-audit', '--no-fund', name], {
      stdio: 'inherit',
    });
  }
  return bin;
}

export const ensureBun = () => ensurePackage('bun', 'bun');
export const ensureDeno = () => ensurePackage('deno', 'deno');

export function runtime(name: Runtime['name']): Runtime {
  if (name === 'bun') {
    const bin = ensureBun();
    return { name, command: (file) => [bin, file] };
  }
  if (name === 'deno') {
    const bin = ensureDeno();
    return { name, command: (file) => [bin, ...DENO_FLAGS, file] };
  }
  const bin = name === 'node24' ? ensureNode24() : process.execPath;
  return { name, command: (file) => [bin, file] };
}
