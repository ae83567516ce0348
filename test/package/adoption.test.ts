import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Runtime, runtime } from '../../scripts/runtimes.js';
import { fetchRaw, type LogLine, rawConnect, spawnProgram, startFixture } from '../helpers.js';

/**
 * Adoption, as a new user lives it: runway packed (`npm pack`), installed
 * from the tarball into a fresh project that holds nothing but a small Hono
 * app written here (one required variable of its own, a secret one, a
 * streaming route, its own onError and notFound), typechecked against the
 * emitted types, built with `npx runway build`, and the runtime contract run
 * on the result: on node, then the same bundle on Bun and Deno.
 */

const REPO = resolve('.');
const version = (name: string) =>
  (JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

const APP = `import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { secret, type SetupDeps } from 'runway';
import { HttpProblem, requestIdOf } from 'runway/hono';
import * as v from 'valibot';

export const env = v.object({
  GREETING: v.pipe(v.string(), v.minLength(1, 'expected a greeting')),
  UPSTREAM_TOKEN: v.optional(v.pipe(v.string(), v.minLength(20, 'expected at least 20 characters'), secret())),
});

let greeting = '';

export function setup(deps: SetupDeps<typeof env>) {
  greeting = deps.env.GREETING;
  deps.log.info('greeting set', { length: greeting.length });
}

const app = new Hono();
app.onError((error, c) => c.json({ own: 'onError', message: error.message }, 500));
app.notFound((c) => c.json({ own: 'notFound', path: c.req.path }, 404));
app.get('/', (c) => c.text(greeting));
app.get('/id', (c) => c.text(requestIdOf(c)));
app.get('/boom', () => {
  throw new Error('kaboom');
});
app.get('/teapot', () => {
  throw new HttpProblem(418, { code: 'teapot', detail: 'short and stout' });
});
app.post('/upload', async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
app.get('/stream', (c) =>
  stream(c, async (out) => {
    for (let i = 0; i < 5; i++) {
      await out.write(\`chunk \${i}\\n\`);
      await out.sleep(200);
    }
  }),
);

export default app;
`;

let project: string;
let tarball: string;
let bundle: string;
let packed: string[];

/** Resolves once the process has written `text` on stderr. */
function stderrIncludes(proc: ChildProcess, text: string): Promise<void> {
  let seen = '';
  return new Promise((resolve) => {
    const check = (chunk: Buffer | string) => {
      seen += chunk.toString();
      if (!seen.includes(text)) return;
      proc.stderr?.off('data', check);
      resolve();
    };
    proc.stderr?.on('data', check);
  });
}

/** Sends GET /stream on a raw connection; resolves once its first chunk arrived, so the request is in flight. */
async function streamInFlight(port: number) {
  const connection = await rawConnect(port);
  const first = new Promise<void>((resolve) => {
    const check = () => {
      if (!connection.received().includes('chunk 0')) return;
      connection.socket.off('data', check);
      resolve();
    };
    connection.socket.on('data', check);
  });
  connection.socket.write('GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await first;
  return connection;
}

const ALL_CHUNKS = /chunk 0\n[\s\S]*chunk 4\n\r\n0\r\n\r\n$/;

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, NODE_ENV: '', ...env } });
  return { code: result.status, out: `${result.stdout}${result.stderr}` };
}

beforeAll(() => {
  const work = mkdtempSync(join(tmpdir(), 'runway-adoption-'));
  // What prepack does on a publish, first: its output would mix with pack's JSON.
  execFileSync('npm', ['run', '--silent', 'build:lib'], { cwd: REPO, stdio: 'ignore' });
  const pack = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], {
      cwd: REPO,
      encoding: 'utf8',
    }),
  ) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, pack[0]?.filename as string);
  packed = (pack[0]?.files ?? []).map((file) => file.path);
  project = join(work, 'my-service');
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({
      name: 'my-service',
      private: true,
      type: 'module',
      dependencies: { runway: `file:${tarball}`, hono: version('hono'), valibot: version('valibot') },
    }),
  );
  writeFileSync(join(project, 'app.ts'), APP);
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2023',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(REPO, 'node_modules/@types')],
      },
      files: ['app.ts'],
    }),
  );
  const install = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], project);
  if (install.code !== 0) throw new Error(`npm install failed: ${install.out}`);
  bundle = join(project, 'dist/server.js');
}, 300_000);

afterAll(() => {
  if (project) rmSync(resolve(project, '..'), { recursive: true, force: true });
});

describe('the packed runway', () => {
  it('takes hono from the app (a peer dependency): one copy, the app’s, so its errors are known by instanceof', () => {
    expect(existsSync(join(project, 'node_modules/runway/node_modules/hono'))).toBe(false);
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules/runway/package.json'), 'utf8'));
    expect(manifest.peerDependencies).toHaveProperty('hono');
    expect(manifest.dependencies).not.toHaveProperty('hono');
  });

  it('ships only what runs: lib with its types, the command, the licence', () => {
    expect(packed).toContain('package.json');
    expect(packed).toContain('bin/runway.mjs');
    expect(packed).toContain('lib/index.js');
    expect(packed).toContain('lib/index.d.ts');
    expect(packed).toContain('LICENSE');
    const unexpected = packed.filter(
      (path) => !/^(lib\/|bin\/|package\.json$|LICENSE$|README\.md$|CHANGELOG\.md$)/.test(path),
    );
    expect(unexpected).toEqual([]);
    expect(packed.filter((path) => path.endsWith('.map') || path.includes('.test.'))).toEqual([]);
  });

  it('typechecks an app against its emitted types', () => {
    const check = run(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', '.'], project);
    expect(check.out).toBe('');
    expect(check.code).toBe(0);
  });

  it('answers --help, and a usage error with one line and exit 2', () => {
    const help = run('npx', ['--no-install', 'runway', '--help'], project);
    expect(help.code).toBe(0);
    expect(help.out).toContain('build <entry>');
    const bad = run('npx', ['--no-install', 'runway', 'bulid', 'app.ts'], project);
    expect(bad.code).toBe(2);
    expect(bad.out.trim()).toBe('runway: unknown command "bulid" (runway --help lists them)');
    // Names every object inherits are not commands either (they once ended in a stack trace).
    for (const name of ['constructor', 'toString', '__proto__']) {
      const inherited = run('npx', ['--no-install', 'runway', name], project);
      expect(inherited.code, name).toBe(2);
      expect(inherited.out.trim()).toBe(`runway: unknown command "${name}" (runway --help lists them)`);
    }
    const missing = run('npx', ['--no-install', 'runway', 'build', 'nope.ts'], project);
    expect(missing.code).toBe(1);
    expect(missing.out.trim()).toBe('runway: nope.ts: no such file');
  });

  it('builds the app into one file with `npx runway build`, with a size report', () => {
    const built = run('npx', ['--no-install', 'runway', 'build', 'app.ts'], project);
    expect(built.out).toMatch(/KB {2}dist\/server\.js \(within the 1024 KB budget\)/);
    expect(built.code).toBe(0);
    expect(readFileSync(bundle, 'utf8').length).toBeGreaterThan(10_000);
  });
});

describe('the runway command in the adopted project', () => {
  it('runs the bundle with `runway start`, passing SIGTERM on, with the server’s exit code', async () => {
    const server = await startFixture({ GREETING: 'started by runway start' }, 'started', {
      program: join(project, 'node_modules/.bin/runway'),
      args: ['start', bundle],
    });
    expect((await fetchRaw(server.port, '/')).body).toBe('started by runway start');
    server.proc.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.logs.some((line) => line.message === 'shutdown complete')).toBe(true);
  });

  it('rebuilds on change with `runway dev`, restarting the server through a real SIGTERM and drain', async () => {
    const entry = join(project, 'dev-app.ts');
    writeFileSync(entry, "import { Hono } from 'hono';\nexport default new Hono().get('/', (c) => c.text('one'));\n");
    const server = await startFixture({}, 'started', {
      program: join(project, 'node_modules/.bin/runway'),
      args: ['dev', 'dev-app.ts'],
      cwd: project,
    });
    expect((await fetchRaw(server.port, '/')).body).toBe('one');
    const first = server.logs.find((line) => line.message === 'listening');
    writeFileSync(entry, "import { Hono } from 'hono';\nexport default new Hono().get('/', (c) => c.text('two'));\n");
    // The old server drains (a real SIGTERM from node --watch), then the new one starts.
    const drained = await server.waitForLog((line) => line.message === 'shutdown complete');
    expect(drained.exitCode).toBe(0);
    const again = await server.waitForLog((line) => line.message === 'listening' && line !== first, 'listening again');
    const afterAgain = (line: LogLine) => server.logs.indexOf(line) > server.logs.indexOf(again);
    await server.waitForLog((line) => line.message === 'started' && afterAgain(line), 'started again');
    expect((await fetchRaw(again.port as number, '/')).body).toBe('two');

    // A save that does not build: the server keeps running the last good build, and says so once.
    const failed = stderrIncludes(server.proc, 'the rebuild failed');
    writeFileSync(entry, "import { Hono } from 'hono';\nexport default new Hono().get('/', (c) => c.text('two'\n");
    await failed;
    expect((await fetchRaw(again.port as number, '/')).body).toBe('two');
    // Fixed, it restarts on the new build.
    writeFileSync(entry, "import { Hono } from 'hono';\nexport default new Hono().get('/', (c) => c.text('three'));\n");
    const third = await server.waitForLog(
      (line) => line.message === 'listening' && afterAgain(line),
      'listening a third time',
    );
    await server.waitForLog(
      (line) => line.message === 'started' && server.logs.indexOf(line) > server.logs.indexOf(third),
    );
    expect((await fetchRaw(third.port as number, '/')).body).toBe('three');
    expect(server.stderr()).not.toContain('MODULE_NOT_FOUND');
    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('drains the server when the terminal of `runway start` closes (SIGHUP), leaving nothing running', async () => {
    const server = await startFixture({ GREETING: 'hung up' }, 'started', {
      program: join(project, 'node_modules/.bin/runway'),
      args: ['start', bundle],
    });
    server.proc.kill('SIGHUP');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.logs.find((line) => line.message === 'shutdown complete')).toMatchObject({ exitCode: 0 });
  });

  it('says in one line what is wrong with a path that is not an entry or not a bundle', () => {
    mkdirSync(join(project, 'adir'), { recursive: true });
    writeFileSync(join(project, 'notes.txt'), 'not a bundle');
    const cases: [string[], string][] = [
      [['build', 'adir'], "runway: adir: not a file (give the entry module's path)"],
      [['start', 'adir'], 'runway: adir: not a bundle (a .js or .mjs file that runway build wrote)'],
      [['start', 'notes.txt'], 'runway: notes.txt: not a bundle (a .js or .mjs file that runway build wrote)'],
    ];
    for (const [args, line] of cases) {
      const result = run('npx', ['--no-install', 'runway', ...args], project);
      expect(result.out.trim(), args.join(' ')).toBe(line);
      expect(result.code, args.join(' ')).toBe(1);
    }
  });

  it('reports an entry that throws as it loads in one JSON line, exit 1', async () => {
    writeFileSync(join(project, 'broken.ts'), "throw new Error('cannot load: missing thing');\nexport default {};\n");
    const built = run(
      'npx',
      ['--no-install', 'runway', 'build', 'broken.ts', '--outfile', 'broken/server.js'],
      project,
    );
    expect(built.code).toBe(0);
    const { proc, exited } = spawnProgram(join(project, 'broken/server.js'), { PORT: '0' });
    let stderr = '';
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    expect(await exited).toEqual({ code: 1, signal: null });
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      severity: 'ERROR',
      message: 'the service failed to load',
      error: { name: 'Error', message: 'cannot load: missing thing' },
    });
  });

  it('bundles with the user’s own esbuild call through runway/build, and the bundle runs', async () => {
    writeFileSync(
      join(project, 'own-build.mjs'),
      [
        "import { build } from 'esbuild';",
        "import { bundleOptions } from 'runway/build';",
        'await build({',
        '  ...bundleOptions,',
        "  stdin: { contents: \"import * as s from './app.ts'; import { startEntry } from 'runway'; startEntry(s);\", resolveDir: '.', loader: 'ts' },",
        "  outfile: 'own/server.js',",
        '});',
      ].join('\n'),
    );
    const built = run(process.execPath, ['own-build.mjs'], project);
    expect(built.out).toBe('');
    expect(built.code).toBe(0);
    const code = readFileSync(join(project, 'own/server.js'), 'utf8');
    // The cold-start plugins came with the options: no ESM import of a builtin, node:http2 stubbed.
    expect(code).not.toMatch(/from\s*["'](node:)?http2["']/);
    expect(code).toContain('process.getBuiltinModule');
    const server = await startFixture({ GREETING: 'own build' }, 'started', {
      program: join(project, 'own/server.js'),
    });
    expect((await fetchRaw(server.port, '/')).body).toBe('own build');
  });

  it('lists every variable the app reads with `runway env`: the runtime’s and its own, required and secret marked', () => {
    const listed = run('npx', ['--no-install', 'runway', 'env', 'app.ts'], project);
    expect(listed.code).toBe(0);
    const rows = listed.out.split('\n').filter((line) => line.startsWith('| `'));
    expect(rows.find((row) => row.startsWith('| `GREETING`'))).toMatch(/\| app +\| — +\| no +\| Required\. /);
    expect(rows.find((row) => row.startsWith('| `UPSTREAM_TOKEN`'))).toMatch(/\| app +\| — +\| yes +\|/);
    expect(rows.find((row) => row.startsWith('| `PORT`'))).toMatch(/\| runtime +\| `8080`/);
    // The runtime alone declares nothing of the database: this app did not opt in.
    expect(rows.some((row) => row.startsWith('| `DATABASE_URL`'))).toBe(false);
  });

  it('runs a command of the bundle with `runway start <bundle> <command>`: an unknown one exits 2', () => {
    const unknown = run('npx', ['--no-install', 'runway', 'start', 'dist/server.js', 'migrate'], project, {
      GREETING: 'hi',
    });
    expect(unknown.code).toBe(2);
    expect(unknown.out).toContain('"message":"unknown command"');
  });

  it('says in one line when there is nothing to check, and checks a Dockerfile against the rules', () => {
    const none = run('npx', ['--no-install', 'runway', 'check-deploy'], project);
    expect(none.code).toBe(1);
    expect(none.out.trim()).toBe(
      'runway: .: no Dockerfile (check-deploy checks a Dockerfile, its ignore files and deploy/)',
    );
    writeFileSync(join(project, 'Dockerfile'), 'FROM gcr.io/distroless/nodejs24-debian12:nonroot\nCOPY dist/ /app/\n');
    writeFileSync(join(project, '.dockerignore'), '.env\n');
    const broken = run('npx', ['--no-install', 'runway', 'check-deploy'], project);
    expect(broken.code).toBe(1);
    expect(broken.out).toContain('Dockerfile');
    expect(broken.out).toMatch(/check-deploy: \d+ problems?/);
    rmSync(join(project, 'Dockerfile'));
  });
});

describe('the runtime contract on the adopted bundle (node)', () => {
  const start = (env: Record<string, string>) => startFixture(env, 'started', { program: bundle });

  it('fails fast, naming the app’s variable, never showing its secret, exit 1', async () => {
    const { proc, exited } = spawnProgram(bundle, { PORT: '0', UPSTREAM_TOKEN: 'short-secret-value' });
    let stderr = '';
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    expect(await exited).toEqual({ code: 1, signal: null });
    const report = JSON.parse(stderr) as { message: string; problems: string[] };
    expect(report.message).toBe('invalid configuration');
    expect(report.problems).toEqual([
      'GREETING: is required',
      'UPSTREAM_TOKEN: expected at least 20 characters, got a value of 18 bytes (not shown)',
    ]);
    expect(stderr).not.toContain('short-secret-value');
  });

  it('serves probes and the app, with its own onError and notFound, and runway’s answers around them', async () => {
    const server = await start({ GREETING: 'hello from my service', BODY_LIMIT_BYTES: '1024' });
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    expect(JSON.parse((await fetchRaw(server.port, '/readyz')).body)).toEqual({
      status: 'ready',
      checks: { event_loop: 'up' },
    });
    const hello = await fetchRaw(server.port, '/', { headers: { 'x-request-id': 'adopt-1' } });
    expect(hello.body).toBe('hello from my service');
    expect(hello.headers['x-request-id']).toBe('adopt-1');
    expect((await fetchRaw(server.port, '/id', { headers: { 'x-request-id': 'adopt-2' } })).body).toBe('adopt-2');
    const missing = await fetchRaw(server.port, '/nope');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toEqual({ own: 'notFound', path: '/nope' });
    const boom = await fetchRaw(server.port, '/boom');
    expect(boom.status).toBe(500);
    expect(JSON.parse(boom.body)).toEqual({ own: 'onError', message: 'kaboom' });
    const tooBig = await fetchRaw(server.port, '/upload', { method: 'POST', body: 'x'.repeat(4096) });
    expect(tooBig.status).toBe(413);
    expect(tooBig.headers['content-type']).toBe('application/problem+json');
    const small = await fetchRaw(server.port, '/upload', { method: 'POST', body: 'x'.repeat(100) });
    expect(JSON.parse(small.body)).toEqual({ bytes: 100 });
    expect(await server.waitForLog((line) => line.message === 'greeting set')).toMatchObject({ length: 21 });
  });

  it('closes a connection that never finishes its headers (slowloris)', async () => {
    const server = await start({ GREETING: 'hi', READ_HEADER_TIMEOUT_MS: '1000', READ_TIMEOUT_MS: '2000' });
    const connection = await rawConnect(server.port);
    connection.socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    await connection.closed;
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('drains on SIGTERM: the stream in flight completes, then exit 0', async () => {
    const server = await start({ GREETING: 'hi' });
    const streamed = await streamInFlight(server.port);
    server.proc.kill('SIGTERM');
    await streamed.closed;
    expect(streamed.received()).toMatch(ALL_CHUNKS);
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.logs.filter((line) => line.severity === 'ERROR')).toEqual([]);
  });
});

describe.each(['bun', 'deno'] as const)('the same adopted bundle on %s', (name) => {
  const on: Runtime = runtime(name);

  it('serves the probes and the app, fails fast on config, and drains a request in flight to exit 0', async () => {
    const { exited } = spawnProgram(bundle, { PORT: '0' }, [], on);
    expect((await exited).code).toBe(1);
    const server = await startFixture({ GREETING: `hi from ${name}` }, 'started', { program: bundle, runtime: on });
    expect((await fetchRaw(server.port, '/healthz')).status).toBe(200);
    expect((await fetchRaw(server.port, '/readyz')).status).toBe(200);
    expect((await fetchRaw(server.port, '/')).body).toBe(`hi from ${name}`);
    expect(JSON.parse((await fetchRaw(server.port, '/nope')).body)).toEqual({ own: 'notFound', path: '/nope' });
    const streamed = await streamInFlight(server.port);
    server.proc.kill('SIGTERM');
    await streamed.closed;
    expect(streamed.received()).toMatch(ALL_CHUNKS);
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });
});
