import { ensureNode24 } from './node24.js';
import { ensurePinned } from './pinned-install.js';

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
// no system info. docs/runtimes.md lists the same flags.
export const DENO_FLAGS = ['run', '--no-prompt', '--allow-net', '--allow-env'];

// The versions the runtime contract and the bench run on (docs/runtimes.md's table names them).
export const BUN_VERSION = '1.4.5';
export const DENO_VERSION = '2.9.6';

export const ensureBun = () => ensurePinned('bun', BUN_VERSION, 'bun');
export const ensureDeno = () => ensurePinned('deno', DENO_VERSION, 'deno');

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
