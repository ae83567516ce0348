import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The dependency direction README's Layout section states: each layer of
 * src/ imports only the layers below it. Read from every import in the
 * sources (type-only and dynamic ones included, which a bundle's metafile
 * would not show), so a type that crosses the line fails too.
 */

const SRC = resolve('src');

// What each layer may import from src/, besides itself. Packages and node: builtins are not checked.
const allowed: Record<string, string[]> = {
  runtime: [],
  config: ['runtime'],
  db: ['runtime', 'config'],
  app: ['runtime', 'config', 'db'],
  'main.ts': ['runtime', 'config'],
  'server.ts': ['main.ts', 'runtime', 'config', 'db', 'app'],
  // Ambient declarations: imported by nothing.
  'sql.d.ts': [],
};

function layerOf(file: string): string {
  return relative(SRC, file).split('/')[0] as string;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import of `file`, resolved to the .ts file it names. */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((imported) => imported.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => resolve(dirname(file), name).replace(/\.js$/, '.ts'));
}

describe('the layout of src/', () => {
  const files = sources(SRC);

  it('puts every source file in a known layer', () => {
    expect(files.map(layerOf).filter((layer) => !(layer in allowed))).toEqual([]);
  });

  it('imports only downwards: the runtime nothing of main.ts, the config, the database or the app', () => {
    const crossings: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const target of importsOf(file)) {
        const to = layerOf(target);
        if (to !== from && !allowed[from]?.includes(to)) {
          crossings.push(`${relative(SRC, file)} imports ${relative(SRC, target)}`);
        }
      }
    }
    expect(crossings).toEqual([]);
  });

  it('would see a crossing, type-only ones included', () => {
    const info = ts.preProcessFile(
      "import type { App } from '../main.js';\nconst m = await import('../app/x.js');",
      true,
      true,
    );
    expect(info.importedFiles.map((f) => f.fileName)).toEqual(['../main.js', '../app/x.js']);
  });
});
