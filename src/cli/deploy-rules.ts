import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigError, composeEnv, loadEnv } from '../config/load.js';
import { postgresEnv } from '../db/env.js';

/**
 * The deploy preflight's rules, as a pure function of a directory: it reads
 * the Dockerfile, .dockerignore and the manifests under deploy/, and returns
 * one finding per broken rule, each naming the file, the field and the fix.
 * The config checks reuse loadConfig itself, so the preflight and the server
 * can never disagree about a budget.
 */

export interface Finding {
  file: string;
  field: string;
  problem: string;
  fix: string;
}

type EnvEntry = { name: string; value?: string; secret: boolean };

// Known load balancer idle timeouts a backend's keep-alive must outlast.
const ALB_IDLE_TIMEOUT_MS = 60_000;
const CLOUD_RUN_GRACE_MS = 10_000;
const SECRET_NAME = /(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)/i;
const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^\s:@/]+:[^\s@/]+@/i;
const REQUIRED_DOCKERIGNORE = ['.git', '.env', '.env.*', 'node_modules', 'test', 'bench/results', '.data'];
// Values that pass validation, standing in for secrets the platform injects.
const PLACEHOLDERS: Record<string, string> = {
  DATABASE_URL: 'postgres://placeholder@db.invalid:5432/app',
  JWT_SIGNING_KEY: 'x'.repeat(48),
};

export function checkDeploy(root: string): Finding[] {
  const findings: Finding[] = [];
  checkDockerfile(root, findings);
  checkDockerignore(root, findings);
  const cloudRun = join(root, 'deploy/cloudrun/service.yaml');
  if (existsSync(cloudRun)) checkCloudRun(root, cloudRun, findings);
  const k8sDir = join(root, 'deploy/kubernetes');
  if (existsSync(k8sDir)) {
    for (const name of readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f)))
      checkKubernetes(root, join(k8sDir, name), findings);
  }
  const ecs = join(root, 'deploy/ecs/task-definition.json');
  if (existsSync(ecs)) checkEcs(root, ecs, findings);
  return findings;
}

const rel = (root: string, path: string) => path.slice(root.length + 1);

function checkDockerfile(root: string, findings: Finding[]) {
  const file = 'Dockerfile';
  const lines = readFileSync(join(root, file), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const froms = lines.map((l, i) => [l, i] as const).filter(([l]) => /^FROM\s/i.test(l));
  const [lastFrom, start] = froms.at(-1) ?? ['', 0];
  const image = imageOf(lastFrom);
  const runtime = lines.slice(start);
  if (!/^gcr\.io\/distroless\//.test(image)) {
    findings.push({
      file,
      field: `FROM ${image} (runtime stage)`,
      problem: 'the runtime stage is not distroless: it ships a shell and a package manager',
      fix: 'use gcr.io/distroless/nodejs24-debian13:nonroot',
    });
  }
  // The distroless project removed its Node.js Debian 12 builds on 2026-02-27: such a tag is no
  // longer updated, and an image built on it collects unpatched CVEs.
  const debian = /^gcr\.io\/distroless\/nodejs\d+-debian(\d+)/.exec(image)?.[1];
  if (debian !== undefined && Number(debian) < 13) {
    findings.push({
      file,
      field: `FROM ${image} (runtime stage, line ${lineOf(root, file, lastFrom)})`,
      problem: `distroless no longer publishes its Node.js Debian ${debian} images (removed 2026-02-27): the tag gets no security updates`,
      fix: 'use gcr.io/distroless/nodejs24-debian13:nonroot (pin it by digest: docs/deploying.md, The artifact and the image)',
    });
  }
  for (const [from] of froms) {
    const name = imageOf(from);
    const unpinned = !name.includes('@sha256:') && (!/:[^/]+$/.test(name) || name.endsWith(':latest'));
    if (name !== '' && unpinned) {
      findings.push({
        file,
        field: `FROM ${name} (line ${lineOf(root, file, from)})`,
        problem: 'the base image is `latest` or has no tag: every build may get another base',
        fix: 'name a tag (node:24-trixie-slim), or pin a digest (image@sha256:...)',
      });
    }
  }
  const user = runtime
    .filter((l) => /^USER\s/i.test(l))
    .at(-1)
    ?.split(/\s+/)[1];
  if (!image.endsWith(':nonroot') || (user !== 'nonroot' && user !== '65532' && user !== '65532:65532')) {
    findings.push({
      file,
      field: user ? `USER ${user}` : 'USER (runtime stage)',
      problem: 'the runtime stage does not run as the non-root user',
      fix: 'use the :nonroot tag of the distroless image and end the stage with USER nonroot',
    });
  }
  for (const line of lines.filter((l) => /^(ENV|ARG)\s/i.test(l))) {
    const [, name = '', value = ''] = /^(?:ENV|ARG)\s+([^=\s]+)(?:[=\s]+(.*))?$/i.exec(line) ?? [];
    if (SECRET_NAME.test(name) || name === 'DATABASE_URL' || URL_WITH_PASSWORD.test(value)) {
      findings.push({
        file,
        field: line,
        problem: `${name} looks like a secret baked into the image`,
        fix: 'remove it; inject it at run time from the secret manager',
      });
    }
  }
}

// The line of the Dockerfile holding `text` (trimmed), 1-based.
function lineOf(root: string, file: string, text: string): number {
  return (
    readFileSync(join(root, file), 'utf8')
      .split('\n')
      .findIndex((line) => line.trim() === text) + 1
  );
}

function ignoreEntries(path: string): string[] {
  return existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'))
    : [];
}

function checkDockerignore(root: string, findings: Finding[]) {
  const file = '.dockerignore';
  const entries = ignoreEntries(join(root, file));
  checkIgnoreEntries(file, entries, findings);
  // `gcloud run deploy --source .` uploads the directory to Cloud Build by .gcloudignore, not
  // .dockerignore: without the same entries the upload holds .env and .git.
  const gcloud = '.gcloudignore';
  if (!existsSync(join(root, gcloud))) {
    findings.push({
      file: gcloud,
      field: gcloud,
      problem: 'there is no .gcloudignore: a source deploy uploads .env, .git and node_modules',
      fix: 'copy .dockerignore to .gcloudignore',
    });
    return;
  }
  const gcloudEntries = ignoreEntries(join(root, gcloud));
  checkIgnoreEntries(gcloud, gcloudEntries, findings);
  for (const entry of entries.filter((e) => !gcloudEntries.includes(e))) {
    findings.push({
      file: gcloud,
      field: entry,
      problem: `${entry} is in .dockerignore but not in .gcloudignore: a source deploy uploads it`,
      fix: `add a line "${entry}" (keep the two files the same)`,
    });
  }
}

function checkIgnoreEntries(file: string, entries: string[], findings: Finding[]) {
  for (const required of REQUIRED_DOCKERIGNORE) {
    if (!entries.includes(required)) {
      findings.push({
        file,
        field: required,
        problem: `${required} is not excluded from the build context`,
        fix: `add a line "${required}"`,
      });
    }
  }
}

// The runtime's variables and runway/postgres's: an app's own are not known here, and are not checked.
const withPostgres = composeEnv([postgresEnv()]);

/** Budget, idle timeout and any invalid value, through loadEnv itself. */
function checkConfig(
  file: string,
  field: string,
  env: EnvEntry[],
  platformEnv: Record<string, string>,
  findings: Finding[],
  idleFloorMs?: number,
) {
  const input: Record<string, string> = { ...platformEnv };
  for (const entry of env)
    input[entry.name] = entry.secret ? (PLACEHOLDERS[entry.name] ?? 'x'.repeat(48)) : (entry.value ?? '');
  try {
    const { config } = loadEnv(input, withPostgres);
    if (idleFloorMs !== undefined && config.server.idleTimeoutMs <= idleFloorMs) {
      findings.push({
        file,
        field: `${field} IDLE_TIMEOUT_MS`,
        problem: `IDLE_TIMEOUT_MS ${config.server.idleTimeoutMs} is not above the ALB idle timeout (${idleFloorMs} ms): the load balancer may reuse a socket we close`,
        fix: `set IDLE_TIMEOUT_MS above ${idleFloorMs} (the default 120000 is)`,
      });
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) {
      findings.push({
        file,
        field: `${field} ${problem.split(':')[0]}`,
        problem,
        fix: 'change the value as the message says',
      });
    }
  }
}

/**
 * Kubernetes and ECS set their grace in the manifest: TERMINATION_GRACE_MS
 * must agree with it, and the drain must fit it (checked by loadConfig), as
 * must the idle timeout against ALB's.
 */
function checkPlatformBudget(
  file: string,
  field: string,
  env: EnvEntry[],
  grace: { graceMs: number; graceField: string },
  findings: Finding[],
  platformEnv: Record<string, string>,
) {
  const declared = env.find((e) => e.name === 'TERMINATION_GRACE_MS')?.value;
  if (declared !== undefined && Number(declared) !== grace.graceMs) {
    findings.push({
      file,
      field: `${field} TERMINATION_GRACE_MS`,
      problem: `TERMINATION_GRACE_MS ${declared} differs from ${grace.graceField} ${grace.graceMs / 1000}`,
      fix: `set TERMINATION_GRACE_MS to ${grace.graceMs}`,
    });
  }
  checkConfig(
    file,
    field,
    env,
    { ...platformEnv, TERMINATION_GRACE_MS: String(grace.graceMs) },
    findings,
    ALB_IDLE_TIMEOUT_MS,
  );
}

function secretLiterals(file: string, field: string, env: EnvEntry[], findings: Finding[]) {
  for (const entry of env) {
    if (entry.secret || entry.value === undefined) continue;
    if (SECRET_NAME.test(entry.name) || URL_WITH_PASSWORD.test(entry.value)) {
      findings.push({
        file,
        field: `${field} ${entry.name}`,
        problem: `${entry.name} carries a literal value that looks like a secret`,
        fix: 'reference it from the secret manager (secretKeyRef / secrets) instead of a literal value',
      });
    }
  }
}

type Container = {
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  ports?: { containerPort?: number; name?: string }[];
  args?: string[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
};
type Probe = { httpGet?: { path?: string; port?: number | string } };

function envOf(container: Container): EnvEntry[] {
  return (container.env ?? []).map((e) => ({ name: e.name, value: e.value, secret: e.valueFrom !== undefined }));
}

function checkProbes(file: string, field: string, container: Container, env: EnvEntry[], findings: Finding[]) {
  const port = Number(env.find((e) => e.name === 'PORT')?.value ?? 8080);
  const containerPorts = container.ports ?? [];
  if (!containerPorts.some((p) => p.containerPort === port)) {
    findings.push({
      file,
      field: `${field}.ports`,
      problem: `no containerPort is ${port}, the port the server listens on (PORT)`,
      fix: `set containerPort: ${port}`,
    });
  }
  const expected: Record<string, string> = {
    startupProbe: '/healthz',
    livenessProbe: '/healthz',
    readinessProbe: '/readyz',
  };
  for (const [kind, path] of Object.entries(expected)) {
    const probe = container[kind as keyof Container] as Probe | undefined;
    if (!probe?.httpGet) continue;
    const named = containerPorts.find((p) => p.name === probe.httpGet?.port)?.containerPort;
    const probePort = typeof probe.httpGet.port === 'string' ? named : probe.httpGet.port;
    if (probe.httpGet.path !== path) {
      findings.push({
        file,
        field: `${field}.${kind}.httpGet.path`,
        problem: `${kind} checks ${probe.httpGet.path}; it must check ${path}${kind === 'livenessProbe' ? ' (a liveness probe on /readyz restarts every pod during a database outage)' : ''}`,
        fix: `set path: ${path}`,
      });
    }
    if (probePort !== port) {
      findings.push({
        file,
        field: `${field}.${kind}.httpGet.port`,
        problem: `${kind} probes port ${String(probe.httpGet.port)}, the server listens on ${port}`,
        fix: `set port: ${port}`,
      });
    }
  }
}

function yamlDocs(path: string): Record<string, unknown>[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((doc) => doc.toJS() as Record<string, unknown>);
}

function checkCloudRun(root: string, path: string, findings: Finding[]) {
  const file = rel(root, path);
  for (const doc of yamlDocs(path)) {
    const spec = (doc?.spec as { template?: { spec?: { containers?: Container[]; containerConcurrency?: number } } })
      ?.template?.spec;
    for (const [i, container] of (spec?.containers ?? []).entries()) {
      const field = `spec.template.spec.containers[${i}]`;
      const env = envOf(container);
      checkConcurrency(file, field, env, spec?.containerConcurrency, findings);
      const grace = env.find((e) => e.name === 'TERMINATION_GRACE_MS')?.value;
      if (grace !== undefined && Number(grace) !== CLOUD_RUN_GRACE_MS) {
        findings.push({
          file,
          field: `${field}.env TERMINATION_GRACE_MS`,
          problem: `Cloud Run's termination grace is ${CLOUD_RUN_GRACE_MS} ms and cannot be changed; TERMINATION_GRACE_MS says ${grace}`,
          fix: 'remove TERMINATION_GRACE_MS and fit the drain into 10 s',
        });
      }
      checkConfig(file, `${field}.env`, env, { K_SERVICE: 'runway' }, findings);
      secretLiterals(file, `${field}.env`, env, findings);
      checkProbes(file, field, container, env, findings);
    }
  }
}

// Cloud Run's own cap on requests per instance (default 80, at most 1000) must
// not exceed ours, or requests Cloud Run routed here on purpose get 503.
function checkConcurrency(
  file: string,
  field: string,
  env: EnvEntry[],
  concurrency: number | undefined,
  findings: Finding[],
) {
  const cap = Number(env.find((e) => e.name === 'MAX_INFLIGHT_REQUESTS')?.value ?? 250);
  const routed = concurrency ?? 80;
  if (cap === 0 || routed <= cap) return;
  findings.push({
    file,
    field: `${field}.env MAX_INFLIGHT_REQUESTS`,
    problem: `Cloud Run sends up to ${routed} requests at once (containerConcurrency) but MAX_INFLIGHT_REQUESTS is ${cap}: the rest would be shed with 503`,
    fix: `set MAX_INFLIGHT_REQUESTS to at least ${routed}, or lower containerConcurrency`,
  });
}

function checkKubernetes(root: string, path: string, findings: Finding[]) {
  const file = rel(root, path);
  for (const doc of yamlDocs(path)) {
    const kind = doc?.kind as string | undefined;
    if (kind !== 'Deployment' && kind !== 'Job') continue;
    const podSpec = (
      doc.spec as { template?: { spec?: { containers?: Container[]; terminationGracePeriodSeconds?: number } } }
    )?.template?.spec;
    for (const [i, container] of (podSpec?.containers ?? []).entries()) {
      const field = `${kind}.spec.template.spec.containers[${i}]`;
      const env = envOf(container);
      secretLiterals(file, `${field}.env`, env, findings);
      if (kind === 'Job') continue;
      const graceMs = (podSpec?.terminationGracePeriodSeconds ?? 30) * 1000;
      checkPlatformBudget(
        file,
        `${field}.env`,
        env,
        { graceMs, graceField: 'terminationGracePeriodSeconds' },
        findings,
        {
          KUBERNETES_SERVICE_HOST: '10.0.0.1',
        },
      );
      checkProbes(file, field, container, env, findings);
      if (!container.readinessProbe) {
        findings.push({
          file,
          field: `${field}.readinessProbe`,
          problem: 'no readiness probe: traffic arrives before the app is ready and during the drain',
          fix: 'add a readinessProbe on /readyz',
        });
      }
    }
  }
}

function checkEcs(root: string, path: string, findings: Finding[]) {
  const file = rel(root, path);
  const task = JSON.parse(readFileSync(path, 'utf8')) as {
    containerDefinitions?: {
      stopTimeout?: number;
      environment?: { name: string; value: string }[];
      secrets?: { name: string }[];
      portMappings?: { containerPort?: number }[];
      healthCheck?: { command?: string[] };
    }[];
  };
  for (const [i, container] of (task.containerDefinitions ?? []).entries()) {
    const field = `containerDefinitions[${i}]`;
    const env: EnvEntry[] = [
      ...(container.environment ?? []).map((e) => ({ name: e.name, value: e.value, secret: false })),
      ...(container.secrets ?? []).map((s) => ({ name: s.name, secret: true })),
    ];
    const graceMs = (container.stopTimeout ?? 30) * 1000;
    checkPlatformBudget(file, `${field}.environment`, env, { graceMs, graceField: 'stopTimeout' }, findings, {
      ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/x',
    });
    secretLiterals(file, `${field}.environment`, env, findings);
    const port = Number(env.find((e) => e.name === 'PORT')?.value ?? 8080);
    if (!(container.portMappings ?? []).some((p) => p.containerPort === port)) {
      findings.push({
        file,
        field: `${field}.portMappings`,
        problem: `no containerPort is ${port}, the port the server listens on`,
        fix: `map containerPort ${port}`,
      });
    }
    const command = (container.healthCheck?.command ?? []).join(' ');
    if (!command.includes(`:${port}/healthz`)) {
      findings.push({
        file,
        field: `${field}.healthCheck.command`,
        problem: `the container health check does not probe /healthz on port ${port}`,
        fix: `probe http://127.0.0.1:${port}/healthz (liveness: never /readyz)`,
      });
    }
  }
}

/** The image a FROM line names: its first word after FROM that is not a flag (`--platform=$BUILDPLATFORM`). */
function imageOf(from: string): string {
  return (
    from
      .split(/\s+/)
      .slice(1)
      .find((word) => !word.startsWith('--')) ?? ''
  );
}
