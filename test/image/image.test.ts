import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from 'hono/jwt';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { freePort } from '../../scripts/free-port.js';
import { type BaseSource, ensureBases, RUN_FLAGS, STORAGE } from '../../scripts/image-bases.js';
import { freshDatabase } from '../db-helpers.js';
import { fetchRaw } from '../helpers.js';
import { buildImage, trackedContext } from './build.js';

/**
 * `npm run test:image`: the repository's Dockerfile, unchanged, built with
 * buildah and run with podman (no Docker engine here), on the real bases
 * where a registry answers and on stand-ins assembled here where none does
 * (scripts/image-bases.ts; the run says which). The build context is a copy
 * of the repository's tracked files with a secret planted in it (a `.env`
 * and an untracked file holding a marker), so the working tree stays clean.
 */

const IMAGE = 'localhost/runway:image-test';
const MARKER = `planted-secret-${process.pid}-${Date.now()}`;
const KEY = 'i'.repeat(48);
const MB = 1024 * 1024;

let context: string;
let bases: BaseSource;
let firstBuild: string;
const containers: string[] = [];

const podman = (args: string[]) => execFileSync('podman', [...STORAGE, ...args], { encoding: 'utf8' });

const buildOurs = () => buildImage(STORAGE, context, IMAGE);

/** Starts the image; resolves once it logged `started` (or exited). */
async function run(env: Record<string, string>, extra: string[] = []) {
  const name = `runway-image-test-${containers.length}-${process.pid}`;
  containers.push(name);
  // Gone with its test: its database is dropped then.
  onTestFinished(() => void spawnSync('podman', [...STORAGE, 'rm', '-f', name]));
  const port = await freePort();
  const args = ['run', '-d', '--name', name, ...RUN_FLAGS, '--read-only', ...extra];
  for (const [key, value] of Object.entries({ PORT: String(port), HOST: '127.0.0.1', ...env })) {
    args.push('-e', `${key}=${value}`);
  }
  podman([...args, IMAGE]);
  for (let tries = 0; tries < 200; tries++) {
    const logs = spawnSync('podman', [...STORAGE, 'logs', name], { encoding: 'utf8' });
    const state = podman(['inspect', '--format', '{{.State.Status}}', name]).trim();
    if (logs.stdout.includes('"started"') || state === 'exited') break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { name, port };
}

const logsOf = (name: string) => {
  const result = spawnSync('podman', [...STORAGE, 'logs', name], { encoding: 'utf8' });
  return result.stdout + result.stderr;
};
const exitCodeOf = (name: string) => Number(podman(['inspect', '--format', '{{.State.ExitCode}}', name]).trim());

/** Every layer of the image, from `podman save` (uncompressed tars), and its config: files and bytes. */
function layers(): { files: string[]; bytes: Buffer }[] {
  const dir = mkdtempSync(join(tmpdir(), 'runway-layers-'));
  try {
    podman(['save', '--format', 'docker-dir', '-o', join(dir, 'image'), IMAGE]);
    const manifest = JSON.parse(readFileSync(join(dir, 'image/manifest.json'), 'utf8')) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    // The config (its environment, its history) is scanned with the layers, last but one.
    const config = readFileSync(join(dir, 'image', manifest.config.digest.replace('sha256:', '')));
    return [...manifest.layers.slice(0, -1), { digest: '' }, manifest.layers.at(-1) as { digest: string }].map(
      ({ digest }) => {
        if (digest === '') return { files: [], bytes: config };
        const path = join(dir, 'image', digest.replace('sha256:', ''));
        const bytes = readFileSync(path);
        const list = spawnSync('tar', ['-tf', path], { encoding: 'utf8', maxBuffer: 256 * MB }).stdout;
        return { files: list.split('\n').filter(Boolean), bytes };
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  bases = ensureBases();
  console.log(`image test: bases ${bases}`);
  context = trackedContext();
  // The planted secret: what a developer's checkout holds and the image must not.
  writeFileSync(join(context, '.env'), `JWT_SIGNING_KEY=${MARKER}\n`);
  writeFileSync(join(context, 'notes-for-me.txt'), `${MARKER}\n`);
  firstBuild = buildOurs();
}, 900_000);

afterAll(() => {
  for (const name of containers) spawnSync('podman', [...STORAGE, 'rm', '-f', name]);
  if (context) rmSync(context, { recursive: true, force: true });
});

describe(`the image, built with buildah and run with podman`, () => {
  it('runs as 65532:65532, read-only, with no shell, and serves health, readiness and the notes API', async () => {
    const url = await freshDatabase();
    const { name, port } = await run({ DATABASE_URL: url, MIGRATE_ON_START: 'true', JWT_SIGNING_KEY: KEY });
    const status = podman(['top', name, 'user', 'group', 'pid', 'args']);
    expect(status).toMatch(/nonroot\s+nonroot\s+1\s+\/nodejs\/bin\/node dist\/server\.js/);
    const pid = Number(podman(['inspect', '--format', '{{.State.Pid}}', name]).trim());
    const ids = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(ids).toMatch(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    expect(ids).toMatch(/^Gid:\s+65532\s+65532\s+65532\s+65532$/m);
    const shell = spawnSync('podman', [...STORAGE, 'exec', name, '/bin/sh', '-c', 'id'], { encoding: 'utf8' });
    expect(shell.status).not.toBe(0);
    expect(shell.stderr).toMatch(/no such file or directory/);
    expect((await fetchRaw(port, '/healthz')).status).toBe(200);
    const ready = await fetchRaw(port, '/readyz');
    expect(JSON.parse(ready.body).checks).toMatchObject({ db: 'up' });
    const now = Math.floor(Date.now() / 1000);
    const token = await sign({ sub: 'image', iat: now, exp: now + 600 }, KEY, 'HS256');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const created = await fetchRaw(port, '/v1/notes', {
      method: 'POST',
      headers,
      body: JSON.stringify({ title: 'from the image' }),
    });
    expect(created.status).toBe(201);
    const { id } = JSON.parse(created.body) as { id: string };
    expect(JSON.parse((await fetchRaw(port, `/v1/notes/${id}`, { headers })).body)).toMatchObject({
      title: 'from the image',
    });
  });

  it('delivers `podman stop` SIGTERM to node as PID 1: a request in flight completes, and the exit is 0', async () => {
    const url = await freshDatabase();
    const { name, port } = await run({ DATABASE_URL: url, MIGRATE_ON_START: 'true', JWT_SIGNING_KEY: KEY });
    const now = Math.floor(Date.now() / 1000);
    const token = await sign({ sub: 'image', iat: now, exp: now + 600 }, KEY, 'HS256');
    // The request waits on a lock the test holds, so it is in flight when the signal comes.
    // Two connections: one holds the lock, the other watches the request wait on it.
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const locking = sql.begin(async (tx) => {
      await tx`lock table notes in access exclusive mode`;
      await held;
    });
    const inFlight = fetchRaw(port, '/v1/notes', { headers: { authorization: `Bearer ${token}` } });
    for (let tries = 0; tries < 200; tries++) {
      const [row] = await sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock'`;
      if ((row?.n as number) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const stopping = spawn('podman', [...STORAGE, 'stop', '-t', '10', name], { stdio: 'ignore' });
    const stopped = new Promise<number | null>((resolve, reject) => {
      stopping.once('exit', resolve);
      stopping.once('error', reject);
    });
    for (let tries = 0; tries < 200 && !logsOf(name).includes('shutdown started'); tries++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    release();
    await locking;
    await sql.end({ timeout: 1 });
    expect((await inFlight).status).toBe(200);
    expect(await stopped).toBe(0);
    expect(exitCodeOf(name)).toBe(0);
    expect(logsOf(name)).toMatch(/"shutdown complete".*"exitCode":0/);
  });

  it('exits 1 on a config error, with the variable named in `podman logs`', async () => {
    const { name } = await run({ PORT: 'eighty' });
    for (
      let tries = 0;
      tries < 200 && podman(['inspect', '--format', '{{.State.Status}}', name]).trim() !== 'exited';
      tries++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(exitCodeOf(name)).toBe(1);
    expect(logsOf(name)).toContain('PORT: expected a whole number');
  });

  it('holds only dist/ in the app layer, and the planted secret and the CA bundle in no layer', () => {
    const all = layers();
    const app = all.at(-1) as { files: string[]; bytes: Buffer };
    const appFiles = app.files.filter((file) => !file.endsWith('/'));
    expect(appFiles.length).toBeGreaterThan(0);
    for (const file of appFiles) expect(file).toMatch(/^(\.\/)?app\/dist\//);
    for (const forbidden of ['node_modules', 'src/', 'test/', '.git/', '.env', 'notes-for-me']) {
      expect(
        app.files.some((file) => file.includes(forbidden)),
        forbidden,
      ).toBe(false);
    }
    // The CA bundle's content is also the runtime base's own (ca-certificates): the build secret is
    // looked for by its mount path, which a layer would hold had it been written into one.
    for (const [i, layer] of all.entries()) {
      expect(layer.bytes.includes(Buffer.from(MARKER)), `the planted secret in layer ${i}`).toBe(false);
      expect(
        layer.files.some((file) => file.includes('run/secrets')),
        `a secret mount in layer ${i}`,
      ).toBe(false);
    }
    const size = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
    const image = Number(podman(['image', 'inspect', '--format', '{{.Size}}', IMAGE]).trim());
    console.log(
      `image test (${bases}): image ${size(image)}, ${all.length - 1} layers; the app layer ${size(app.bytes.length)} ` +
        `(${appFiles.length} files: ${appFiles.join(', ')})`,
    );
  });

  it('reuses the npm ci layer when only the service’s source changed', () => {
    expect(firstBuild).toMatch(/npm ci/);
    const file = join(context, 'service/server.ts');
    // Unique per run: the layer cache outlives the run, and a touch seen before would be cached too.
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8')}\n// touched by the image test, run ${process.pid}-${Date.now()}\n`,
    );
    const again = buildOurs();
    const install = again.split('\n').findIndex((line) => /STEP \d+\/\d+: RUN .*npm ci/.test(line));
    expect(install).toBeGreaterThan(-1);
    expect(again.split('\n')[install + 1]).toMatch(/Using cache/);
    // And the sources were built again.
    const build = again.split('\n').findIndex((line) => /STEP \d+\/\d+: RUN npm run build/.test(line));
    expect(again.split('\n')[build + 1] ?? '').not.toMatch(/Using cache/);
  });
});
