import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/free-port.js';
import { ARM64_STORAGE, type BaseSource, ensureArm64Bases, RUN_FLAGS } from '../../scripts/image-bases.js';
import { freshDatabase } from '../db-helpers.js';
import { fetchRaw } from '../helpers.js';
import { buildImage, trackedContext } from './build.js';

/**
 * The repository's Dockerfile built for linux/arm64 (the seed's cost advice: arm64 instances) and
 * started under emulation (qemu-user-static through binfmt_misc) for its probes and a drain. The build
 * stage runs on the builder's platform (the bundle is JavaScript); only the runtime stage is arm64.
 */

const IMAGE = 'localhost/runway:arm64-test';
const NAME = `runway-arm64-test-${process.pid}`;
const podman = (args: string[]) => execFileSync('podman', [...ARM64_STORAGE, ...args], { encoding: 'utf8' });

let context: string;
let bases: BaseSource;

beforeAll(() => {
  // What runs an arm64 binary here: the kernel hands it to qemu (.ci/run registers it).
  const binfmt = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
  if (!existsSync(binfmt) || !readFileSync(binfmt, 'utf8').startsWith('enabled')) {
    throw new Error(`${binfmt} is not enabled: apt-get install qemu-user-static binfmt-support (see .ci/run)`);
  }
  bases = ensureArm64Bases();
  console.log(`arm64 image test: bases ${bases}`);
  context = trackedContext();
  buildImage(ARM64_STORAGE, context, IMAGE, 'linux/arm64');
}, 900_000);

afterAll(() => {
  spawnSync('podman', [...ARM64_STORAGE, 'rm', '-f', NAME]);
  if (context) rmSync(context, { recursive: true, force: true });
});

describe('the image for linux/arm64, run under emulation', () => {
  it('is an arm64 image whose node is an arm64 build', () => {
    expect(podman(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', IMAGE]).trim()).toBe('linux/arm64');
    const arch = podman(['run', '--rm', ...RUN_FLAGS, '--arch', 'arm64', IMAGE, '-p', 'process.arch']);
    expect(arch.trim()).toBe('arm64');
  });

  it('starts, answers /healthz and /readyz against PostgreSQL, and exits 0 on `podman stop`', async () => {
    const port = await freePort();
    // NODE_ENV=production in the image: the notes service requires its database.
    const url = await freshDatabase();
    podman([
      'run',
      '-d',
      '--name',
      NAME,
      ...RUN_FLAGS,
      '--arch',
      'arm64',
      '--read-only',
      '-e',
      `PORT=${port}`,
      '-e',
      'HOST=127.0.0.1',
      '-e',
      `DATABASE_URL=${url}`,
      IMAGE,
    ]);
    // Emulated, the start is slow: poll the probe, within a generous bound.
    let live = await fetchRaw(port, '/healthz').catch(() => undefined);
    for (let tries = 0; live?.status !== 200 && tries < 600; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      live = await fetchRaw(port, '/healthz').catch(() => undefined);
    }
    expect(live?.status).toBe(200);
    expect(JSON.parse((await fetchRaw(port, '/readyz')).body)).toMatchObject({ status: 'ready', checks: { db: 'up' } });
    podman(['stop', '-t', '10', NAME]);
    expect(podman(['inspect', '--format', '{{.State.ExitCode}}', NAME]).trim()).toBe('0');
    const logs = spawnSync('podman', [...ARM64_STORAGE, 'logs', NAME], { encoding: 'utf8' }).stdout;
    expect(logs).toContain('"message":"shutdown complete"');
  });
});
