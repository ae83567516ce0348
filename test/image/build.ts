import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_FLAGS } from '../../scripts/image-bases.js';

const MB = 1024 * 1024;

/** A build context: a copy of the repository's tracked files, so the working tree stays clean. */
export function trackedContext(): string {
  const context = mkdtempSync(join(tmpdir(), 'runway-context-'));
  const tracked = execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const file of tracked) {
    mkdirSync(join(context, file, '..'), { recursive: true });
    cpSync(file, join(context, file));
  }
  return context;
}

const HOST_PLATFORM = `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;

/** `buildah bud` of the repository's Dockerfile in `context`, as the image tests build it; its output. */
export function buildImage(storage: string[], context: string, tag: string, platform = HOST_PLATFORM): string {
  const result = spawnSync(
    'buildah',
    [
      ...storage,
      'bud',
      '--pull=never',
      // Docker caches each step by default; buildah only with --layers.
      '--layers',
      ...RUN_FLAGS,
      // The machine's CA bundle for npm ci, as a build secret: it must land in no layer.
      '--secret',
      `id=npm_ca,src=${execFileSync('npm', ['config', 'get', 'cafile'], { encoding: 'utf8' }).trim()}`,
      '--platform',
      platform,
      // Docker (BuildKit) predefines both; buildah 1.28 does not, and without them the build stage's
      // `--platform=$BUILDPLATFORM` would be the target's (an arm64 build stage, under emulation).
      '--build-arg',
      `BUILDPLATFORM=${HOST_PLATFORM}`,
      '--build-arg',
      `TARGETPLATFORM=${platform}`,
      '-t',
      tag,
      context,
    ],
    { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * MB },
  );
  if (result.status !== 0) throw new Error(`buildah bud failed: ${result.stdout}\n${result.stderr}`);
  return result.stdout + result.stderr;
}
