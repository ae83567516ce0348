import type { TestProject } from 'vitest/node';
import { chooseSeed } from './random.js';

/** Global setup of `npm run test:chaos`: one seed for the whole run, printed first. */
export default function setup(project: TestProject) {
  const seed = chooseSeed();
  const bundle = process.env.CHAOS_BUNDLE ?? 'dist/server.js';
  console.log(`chaos campaign: seed ${seed} (replay: CHAOS_SEED=${seed} npm run test:chaos), bundle ${bundle}`);
  project.provide('chaosSeed', seed);
}
