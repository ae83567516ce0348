import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/**
 * The workflows cannot run here; their key rules are checked by reading
 * them: least permissions, an OIDC token only where a deploy needs it, and
 * no long-lived credential anywhere.
 */

type Job = {
  permissions?: Record<string, string>;
  steps?: { uses?: string; with?: Record<string, string>; run?: string }[];
};
type Workflow = { permissions?: Record<string, string>; jobs: Record<string, Job> };

const dir = '.github/workflows';
const workflows = readdirSync(dir)
  .filter((f) => /\.ya?ml$/.test(f))
  .map((file) => ({
    file,
    text: readFileSync(`${dir}/${file}`, 'utf8'),
    yaml: parse(readFileSync(`${dir}/${file}`, 'utf8')) as Workflow,
  }));

describe('GitHub workflows', () => {
  it('exist: ci and deploy', () => {
    expect(workflows.map((w) => w.file).sort()).toEqual(['ci.yml', 'deploy.yml']);
  });

  it('default every workflow to read-only contents', () => {
    for (const { file, yaml } of workflows) expect(yaml.permissions, file).toEqual({ contents: 'read' });
  });

  it('grant id-token: write only to the job that deploys', () => {
    const holders = workflows.flatMap(({ file, yaml }) =>
      Object.entries(yaml.jobs)
        .filter(([, job]) => job.permissions?.['id-token'] === 'write')
        .map(([name]) => `${file}:${name}`),
    );
    expect(holders).toEqual(['deploy.yml:deploy']);
    for (const { yaml } of workflows) expect(yaml.permissions?.['id-token']).toBeUndefined();
  });

  it('authenticate to Google through Workload Identity Federation, never a key', () => {
    const auth = workflows.flatMap(({ yaml }) =>
      Object.values(yaml.jobs).flatMap((job) =>
        (job.steps ?? []).filter((s) => s.uses?.startsWith('google-github-actions/auth')),
      ),
    );
    expect(auth).toHaveLength(1);
    expect(auth[0]?.with).toHaveProperty('workload_identity_provider');
    expect(auth[0]?.with).not.toHaveProperty('credentials_json');
  });

  it('hold no long-lived credential or plaintext secret', () => {
    for (const { file, text } of workflows) {
      expect(text, file).not.toMatch(
        /credentials_json|GOOGLE_CREDENTIALS|GCP_SA_KEY|AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID/,
      );
      expect(text, file).not.toMatch(/postgres(ql)?:\/\/[^\s:@/]+:[^\s@/$]+@/);
      expect(text, file).not.toMatch(/(KEY|SECRET|TOKEN|PASSWORD)\s*:\s*['"]?[A-Za-z0-9+/=_-]{12,}/);
    }
  });

  it('gate on tests, the deploy preflight, an audit and an image scan before anything deploys', () => {
    // From the parsed steps, not the text: a commented-out step must not count.
    const ci = workflows.find((w) => w.file === 'ci.yml')?.yaml;
    const steps = Object.values(ci?.jobs ?? {}).flatMap((job) => job.steps ?? []);
    const runs = steps.map((step) => step.run ?? '');
    for (const command of ['npm test', 'npm run check:deploy', 'npm audit', 'npm run typecheck', 'npm run lint']) {
      expect(
        runs.some((run) => run.split('\n').some((line) => line.trim().startsWith(command))),
        command,
      ).toBe(true);
    }
    expect(steps.some((step) => step.uses?.startsWith('aquasecurity/trivy-action'))).toBe(true);
    const deploy = workflows.find((w) => w.file === 'deploy.yml')?.yaml as Workflow & {
      jobs: Record<string, Job & { if?: string }>;
    };
    expect(deploy.jobs.deploy?.if).toContain("conclusion == 'success'");
  });
});
