import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { checkDeploy, type Finding } from '../../src/cli/deploy-rules.js';

/** The repo's own deploy files, copied, with one thing broken. */
function brokenCopy(file: string, edit: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'runway-deploy-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of ['Dockerfile', '.dockerignore', '.gcloudignore', 'deploy']) {
    cpSync(name, join(dir, name), { recursive: true });
  }
  const path = join(dir, file);
  const before = readFileSync(path, 'utf8');
  const after = edit(before);
  expect(after, 'the fixture edit changed nothing').not.toBe(before);
  writeFileSync(path, after);
  return dir;
}

function expectFinding(findings: Finding[], file: string, field: RegExp) {
  const found = findings.find((f) => f.file === file && field.test(f.field));
  expect(found, `no finding for ${file} ${field}; got ${JSON.stringify(findings, null, 2)}`).toBeDefined();
  expect(found?.fix).not.toBe('');
  return found as Finding;
}

const K8S = 'deploy/kubernetes/deployment.yaml';
const RUN = 'deploy/cloudrun/service.yaml';
const ECS = 'deploy/ecs/task-definition.json';

describe('check:deploy', () => {
  it("passes on the repo's own Dockerfile, .dockerignore and manifests", () => {
    expect(checkDeploy(process.cwd())).toEqual([]);
  });

  it('fails when the Kubernetes drain does not fit terminationGracePeriodSeconds', () => {
    const dir = brokenCopy(K8S, (t) => t.replace('value: "5000"', 'value: "25000"'));
    const finding = expectFinding(checkDeploy(dir), K8S, /GRACEFUL_TIMEOUT_MS$/);
    expect(finding.problem).toContain('= 36500 ms must be shorter than the termination grace (30000 ms');
  });

  it('fails when the Cloud Run drain does not fit its 10 s', () => {
    const dir = brokenCopy(RUN, (t) =>
      t.replace(
        '- name: NODE_ENV\n',
        '- name: GRACEFUL_TIMEOUT_MS\n              value: "9500"\n            - name: NODE_ENV\n',
      ),
    );
    expectFinding(checkDeploy(dir), RUN, /GRACEFUL_TIMEOUT_MS$/);
  });

  it('fails when Cloud Run may route more requests than MAX_INFLIGHT_REQUESTS admits', () => {
    const dir = brokenCopy(RUN, (t) => t.replace('containerConcurrency: 80', 'containerConcurrency: 400'));
    const finding = expectFinding(checkDeploy(dir), RUN, /MAX_INFLIGHT_REQUESTS$/);
    expect(finding.fix).toBe('set MAX_INFLIGHT_REQUESTS to at least 400, or lower containerConcurrency');
  });

  it('fails when TERMINATION_GRACE_MS disagrees with ECS stopTimeout', () => {
    const dir = brokenCopy(ECS, (t) => t.replace('"stopTimeout": 30', '"stopTimeout": 20'));
    expectFinding(checkDeploy(dir), ECS, /TERMINATION_GRACE_MS$/);
  });

  it('fails when the idle timeout is not above the ALB idle timeout', () => {
    const dir = brokenCopy(ECS, (t) =>
      t.replace('"IDLE_TIMEOUT_MS", "value": "120000"', '"IDLE_TIMEOUT_MS", "value": "30000"'),
    );
    expect(expectFinding(checkDeploy(dir), ECS, /IDLE_TIMEOUT_MS$/).problem).toContain('ALB');
  });

  it('fails on a liveness probe pointed at /readyz', () => {
    const dir = brokenCopy(K8S, (t) =>
      t.replace(/livenessProbe:\n(\s+)httpGet:\n(\s+)path: \/healthz/, 'livenessProbe:\n$1httpGet:\n$2path: /readyz'),
    );
    expectFinding(checkDeploy(dir), K8S, /livenessProbe\.httpGet\.path$/);
  });

  it('fails on a probe port that is not the service port', () => {
    const dir = brokenCopy(K8S, (t) =>
      t.replace(/(readinessProbe:\n\s+httpGet:\n\s+path: \/readyz\n\s+)port: 8080/, '$1port: 3000'),
    );
    expectFinding(checkDeploy(dir), K8S, /readinessProbe\.httpGet\.port$/);
  });

  it('fails on an ECS health check that does not probe /healthz on the port', () => {
    const dir = brokenCopy(ECS, (t) => t.replace('8080/healthz', '8080/readyz'));
    expectFinding(checkDeploy(dir), ECS, /healthCheck\.command$/);
  });

  it('fails on a secret-looking literal in a manifest env value', () => {
    const dir = brokenCopy(K8S, (t) =>
      t.replace(
        '- name: NODE_ENV\n',
        '- name: API_TOKEN\n              value: "s3cr3t"\n            - name: NODE_ENV\n',
      ),
    );
    expectFinding(checkDeploy(dir), K8S, /API_TOKEN$/);
  });

  it('fails on a DATABASE_URL with a password written into a manifest', () => {
    const dir = brokenCopy(ECS, (t) =>
      t.replace(
        '{ "name": "PORT", "value": "8080" },',
        '{ "name": "PORT", "value": "8080" }, { "name": "DATABASE_URL", "value": "postgres://app:hunter2@db/app" },',
      ),
    );
    expectFinding(checkDeploy(dir), ECS, /DATABASE_URL$/);
  });

  it('fails on a secret in a Dockerfile ENV or ARG', () => {
    const dir = brokenCopy('Dockerfile', (t) =>
      t.replace('ENV NODE_ENV=production', 'ENV NODE_ENV=production\nARG NPM_TOKEN'),
    );
    expectFinding(checkDeploy(dir), 'Dockerfile', /NPM_TOKEN/);
  });

  it('fails on a runtime stage that is not distroless', () => {
    const dir = brokenCopy('Dockerfile', (t) =>
      t.replace(
        /^(FROM (?:--platform=\S+ )?)gcr\.io\/distroless\/nodejs24-debian13:nonroot$/m,
        '$1node:24-trixie-slim',
      ),
    );
    expectFinding(checkDeploy(dir), 'Dockerfile', /runtime stage/);
  });

  it('fails on a runtime stage that runs as root', () => {
    const dir = brokenCopy('Dockerfile', (t) => t.replace('USER nonroot\n', ''));
    expectFinding(checkDeploy(dir), 'Dockerfile', /^USER/);
  });

  it('fails on a distroless Node.js tag the project no longer publishes (Debian 12), naming the line', () => {
    const dir = brokenCopy('Dockerfile', (t) =>
      t.replace('gcr.io/distroless/nodejs24-debian13:nonroot', 'gcr.io/distroless/nodejs24-debian12:nonroot'),
    );
    const found = expectFinding(checkDeploy(dir), 'Dockerfile', /nodejs24-debian12.*line \d+/);
    expect(found.problem).toMatch(/no longer publishes/);
  });

  it('fails on a base image that is latest or has no tag, in either stage', () => {
    const latest = brokenCopy('Dockerfile', (t) => t.replace('node:24-trixie-slim AS build', 'node:latest AS build'));
    expectFinding(checkDeploy(latest), 'Dockerfile', /^FROM node:latest/);
    const untagged = brokenCopy('Dockerfile', (t) =>
      t.replace('gcr.io/distroless/nodejs24-debian13:nonroot', 'gcr.io/distroless/nodejs24-debian13'),
    );
    expectFinding(checkDeploy(untagged), 'Dockerfile', /^FROM gcr\.io\/distroless\/nodejs24-debian13 \(line/);
    const digest = brokenCopy('Dockerfile', (t) =>
      t.replace('node:24-trixie-slim AS build', `node@sha256:${'a'.repeat(64)} AS build`),
    );
    expect(checkDeploy(digest).filter((f) => f.file === 'Dockerfile')).toEqual([]);
  });

  it('fails on a runtime stage on a :nonroot-less tag', () => {
    const dir = brokenCopy('Dockerfile', (t) =>
      t.replace('gcr.io/distroless/nodejs24-debian13:nonroot', 'gcr.io/distroless/nodejs24-debian13:latest'),
    );
    expectFinding(checkDeploy(dir), 'Dockerfile', /^USER/);
  });

  it('fails on a .gcloudignore that is missing, or lets in what .dockerignore keeps out', () => {
    const drifted = brokenCopy('.gcloudignore', (t) => t.replace('\n.env\n', '\n'));
    expectFinding(checkDeploy(drifted), '.gcloudignore', /^\.env$/);
    const missing = brokenCopy('.gcloudignore', (t) => `${t}\n# removed below`);
    rmSync(join(missing, '.gcloudignore'));
    expectFinding(checkDeploy(missing), '.gcloudignore', /^\.gcloudignore$/);
  });

  it('fails on a .dockerignore that lets .env files in', () => {
    const dir = brokenCopy('.dockerignore', (t) => t.replace('.env.*\n', ''));
    expectFinding(checkDeploy(dir), '.dockerignore', /^\.env\.\*$/);
  });
});
