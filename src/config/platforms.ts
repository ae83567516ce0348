import type { RuntimeEnv as Env } from './variables.js';

/**
 * The platforms whose termination grace runway knows, how it tells which one
 * it runs on, and the shutdown budget that follows.
 */

// Platforms whose termination grace we know. Sources: Cloud Run "container
// runtime contract" (SIGTERM, then SIGKILL 10 s later); ECS task definition
// `stopTimeout` default 30 s; Kubernetes `terminationGracePeriodSeconds`
// default 30 s.
export const platforms = {
  cloudrun: { name: 'Cloud Run', terminationGraceMs: 10_000, gracefulTimeoutMs: 8_000 },
  ecs: { name: 'ECS', terminationGraceMs: 30_000, gracefulTimeoutMs: 10_000 },
  kubernetes: { name: 'Kubernetes', terminationGraceMs: 30_000, gracefulTimeoutMs: 10_000 },
  // Anywhere else (a VM, a laptop) we assume the common 30 s of ECS and Kubernetes.
  other: { name: 'no platform detected', terminationGraceMs: 30_000, gracefulTimeoutMs: 10_000 },
} as const;
export type Platform = keyof typeof platforms;

export function detectPlatform(
  env: Pick<Env, 'K_SERVICE' | 'ECS_CONTAINER_METADATA_URI_V4' | 'KUBERNETES_SERVICE_HOST'>,
): Platform {
  if (env.K_SERVICE) return 'cloudrun';
  if (env.ECS_CONTAINER_METADATA_URI_V4) return 'ecs';
  if (env.KUBERNETES_SERVICE_HOST) return 'kubernetes';
  return 'other';
}

export function shutdownBudget(env: Env) {
  const platform = platforms[detectPlatform(env)];
  return {
    platform,
    terminationGraceMs: env.TERMINATION_GRACE_MS ?? platform.terminationGraceMs,
    graceSource:
      env.TERMINATION_GRACE_MS !== undefined
        ? 'TERMINATION_GRACE_MS'
        : platform === platforms.other
          ? 'assumed: no platform detected, so the ECS and Kubernetes default'
          : `the ${platform.name} default`,
    gracefulTimeoutMs: env.GRACEFUL_TIMEOUT_MS ?? platform.gracefulTimeoutMs,
  };
}
