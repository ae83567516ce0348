import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The dependency direction docs/layout.md states: each layer of src/
 * imports only the layers below it; and everything that is not runway (the
 * notes service, the bench and test fixtures) reaches runway only through
 * its public entry points, by package name. Read from every import in the
 * sources (type-only and dynamic ones included, which a bundle's metafile
 * would not show), so a type that crosses the line fails too.
 */

const SRC = resolve('src');

// What each layer may import from src/, besides itself. Packages and node: builtins are not checked.
const allowed: Record<string, string[]> = {
  runtime: [],
  config: ['runtime'],
  db: ['runtime', 'config'],
  build: [],
  cli: ['build', 'config', 'db', 'runtime'],
  'main.ts': ['runtime', 'config'],
  // The public entry points (package.json's exports) and the command.
  'index.ts': ['main.ts', 'config', 'runtime'],
  'hono.ts': ['runtime'],
  'postgres.ts': ['db'],
  'postgres-env.ts': ['db'],
  'build.ts': ['build'],
  'cli.ts': ['build', 'cli'],
};

function layerOf(file: string): string {
  return relative(SRC, file).split('/')[0] as string;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|mts|mjs)$/.test(entry.name) ? [path] : [];
  });
}

function specifiersOf(code: string): string[] {
  return ts.preProcessFile(code, true, true).importedFiles.map((imported) => imported.fileName);
}

/** Every relative import of `file`, resolved to the .ts file it names. */
function importsOf(file: string): string[] {
  return specifiersOf(readFileSync(file, 'utf8'))
    .filter((name) => name.startsWith('.'))
    .map((name) => resolve(dirname(file), name).replace(/\.js$/, '.ts'));
}

const exported = new Set(
  Object.keys((JSON.parse(readFileSync('package.json', 'utf8')) as { exports: object }).exports).map((key) =>
    key === '.' ? 'runway' : `runway/${key.slice(2)}`,
  ),
);

/** What `file` imports of runway other than through an entry point of package.json's exports. */
function deepImports(file: string, code = readFileSync(file, 'utf8')): string[] {
  return specifiersOf(code).flatMap((name) => {
    if (name.startsWith('.')) {
      const target = resolve(dirname(file), name);
      return target.startsWith(`${SRC}/`) ? [`${file} imports ${name}`] : [];
    }
    return /^runway(\/|$)/.test(name) && !exported.has(name) ? [`${file} imports ${name}`] : [];
  });
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

describe('what is not runway', () => {
  // The service and the fixtures are what a user writes: they see runway as a user does.
  const outside = ['service', 'bench/fixtures', 'test/fixtures'].flatMap((dir) => sources(resolve(dir)));

  it('imports runway only by name, through the entry points of package.json', () => {
    expect(outside.length).toBeGreaterThan(20);
    expect(outside.flatMap((file) => deepImports(file))).toEqual([]);
  });

  it('would see a deep import, relative or by a name that is not exported', () => {
    const file = resolve('service/app/x.ts');
    expect(
      deepImports(
        file,
        "import { a } from '../../src/runtime/logger.js';\nimport b from 'runway/runtime/sse';\nimport c from 'runway/hono';",
      ),
    ).toEqual([`${file} imports ../../src/runtime/logger.js`, `${file} imports runway/runtime/sse`]);
  });
});
