import { checkDeploy } from './deploy-rules.js';

/**
 * `npm run check:deploy [DIR]`: the deploy preflight. Reads the Dockerfile,
 * .dockerignore and deploy/ (of DIR, default this repo) and exits 1 with one
 * line per broken rule: file, field, problem, fix.
 */
const root = process.argv[2] ?? process.cwd();
const findings = checkDeploy(root);
for (const f of findings) console.log(`${f.file}: ${f.field}: ${f.problem}. Fix: ${f.fix}.`);
if (findings.length > 0) {
  console.log(`check:deploy: ${findings.length} problem${findings.length === 1 ? '' : 's'}`);
  process.exitCode = 1;
} else {
  console.log('check:deploy: Dockerfile, .dockerignore and deploy/ pass every rule');
}
