import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HTTP2_STUB_SOURCE } from '../../src/build/http2-stub.js';

// The stub as the bundle gets it: its source text, loaded as a module.
const stub = (await import(`data:text/javascript,${encodeURIComponent(HTTP2_STUB_SOURCE)}`)) as {
  constants: Record<string, unknown>;
};

/**
 * The bundle replaces node:http2 with a stub (src/build/http2-stub.ts) for
 * @hono/node-server's sake. If an upgrade of that package imports another
 * name from node:http2, or reads another of its constants, the stub would
 * hand it undefined: this fails first.
 */
const dist = 'node_modules/@hono/node-server/dist';

function sourcesImportingHttp2(): { file: string; code: string }[] {
  const files = readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.mjs'));
  return files
    .map((file) => ({ file, code: readFileSync(join(dist, file), 'utf8') }))
    .filter(({ code }) => /from\s*["'](node:)?http2["']/.test(code));
}

describe('the node:http2 stub', () => {
  it('provides every name @hono/node-server imports from node:http2 and every constant it reads', () => {
    const sources = sourcesImportingHttp2();
    expect(sources.length).toBeGreaterThan(0);
    for (const { file, code } of sources) {
      for (const match of code.matchAll(/import\s*\{([^}]*)\}\s*from\s*["'](?:node:)?http2["']/g)) {
        for (const name of (match[1] as string).split(',').map((part) => part.trim().split(/\s+as\s+/)[0])) {
          if (name) expect(Object.keys(stub), `${file} imports ${name}`).toContain(name);
        }
      }
      expect(code, `${file} imports node:http2 some other way`).not.toMatch(
        /import\s+\*\s+as\s+\w+\s+from\s*["'](node:)?http2/,
      );
      for (const match of code.matchAll(/\bconstants\.([A-Z0-9_]+)/g)) {
        expect(Object.keys(stub.constants), `${file} reads constants.${match[1]}`).toContain(match[1]);
      }
    }
  });
});
