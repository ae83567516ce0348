import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * There is no Docker engine on these machines, so the image's rules are
 * proven by reading the Dockerfile and .dockerignore. Each assertion names
 * the rule it pins.
 */

const dockerfile = readFileSync('Dockerfile', 'utf8');
// One instruction per line: continuation lines joined first.
const instructions = dockerfile
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));
const stages: string[][] = [];
for (const line of instructions) {
  if (/^FROM\s/i.test(line)) stages.push([]);
  stages.at(-1)?.push(line);
}
const build = stages[0] ?? [];
const runtime = stages.at(-1) ?? [];
// The image, past any flag (`--platform=$BUILDPLATFORM`).
const from = (stage: string[]) =>
  (stage[0] ?? '')
    .split(/\s+/)
    .slice(1)
    .find((word) => !word.startsWith('--')) ?? '';

describe('Dockerfile', () => {
  it('has a build stage on an official Node image and a distroless Node.js :nonroot runtime stage, same Node major', () => {
    expect(stages).toHaveLength(2);
    const buildMajor = /^node:(\d+)[-.]/.exec(from(build))?.[1];
    const runtimeMajor = /^gcr\.io\/distroless\/nodejs(\d+)-debian\d+:nonroot$/.exec(from(runtime))?.[1];
    expect(buildMajor, `build stage FROM ${from(build)}`).toBeDefined();
    expect(runtimeMajor, `runtime stage FROM ${from(runtime)}`).toBeDefined();
    expect(runtimeMajor).toBe(buildMajor);
    expect(runtimeMajor).toBe('24');
  });

  it('installs dependencies from package*.json before copying the sources, for layer caching', () => {
    const copyManifests = build.findIndex((line) => /^COPY\s+package\.json\s+package-lock\.json\s/.test(line));
    const install = build.findIndex((line) => /^RUN\s.*\bnpm ci\b/.test(line));
    const copySources = build.findIndex((line) => /^COPY\s+src\b/.test(line));
    expect(copyManifests).toBeGreaterThan(-1);
    expect(install).toBeGreaterThan(copyManifests);
    expect(copySources).toBeGreaterThan(install);
    expect(build.some((line) => /^RUN\s+npm run build$/.test(line))).toBe(true);
  });

  it('copies only dist/ from the build stage into the runtime stage', () => {
    const copies = runtime.filter((line) => /^(COPY|ADD)\s/i.test(line));
    expect(copies).toEqual(['COPY --from=build /src/dist/ ./dist/']);
  });

  it('runs as nonroot, in production mode, with the bundle as the entry', () => {
    expect(runtime.filter((line) => /^USER\s/.test(line))).toEqual(['USER nonroot']);
    expect(runtime).toContain('ENV NODE_ENV=production');
    expect(runtime.at(-1)).toBe('CMD ["dist/server.js"]');
    expect(runtime.some((line) => /^ENTRYPOINT/.test(line))).toBe(false);
  });

  it('takes an extra CA bundle for npm ci as a build secret only, never as a layer', () => {
    const install = build.find((line) => /\bnpm ci\b/.test(line)) ?? '';
    expect(install).toMatch(/^RUN --mount=type=secret,id=npm_ca,required=false /);
    expect(install).toContain('NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca');
    expect(instructions.filter((line) => /^(COPY|ADD)\s/.test(line)).join('\n')).not.toMatch(/\.pem\b|npm_ca|cert/i);
  });

  it('puts no secret in an ENV or ARG, anywhere', () => {
    const secretish = /(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|DATABASE_URL)/i;
    for (const line of instructions.filter((l) => /^(ENV|ARG)\s/i.test(l))) {
      expect(line, `${line} looks like it carries a secret`).not.toMatch(secretish);
    }
    expect(dockerfile).not.toMatch(/postgres(ql)?:\/\/[^\s:@/]+:[^\s@/]+@/);
  });
});

describe('.dockerignore', () => {
  const entries = readFileSync('.dockerignore', 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  it('keeps git, env files, node_modules, tests, benchmark results and local data out of the build context', () => {
    for (const required of ['.git', '.env', '.env.*', 'node_modules', 'test', 'bench/results', '.data']) {
      expect(entries, `.dockerignore lacks ${required}`).toContain(required);
    }
  });

  it('does not exclude what the build stage copies', () => {
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'scripts', 'src']) {
      expect(entries).not.toContain(needed);
    }
  });
});
