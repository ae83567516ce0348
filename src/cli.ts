import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { context, type Plugin } from 'esbuild';
import {
  BundleError,
  bundleService,
  checkEntry,
  DEFAULT_BUDGET_BYTES,
  DEFAULT_OUTFILE,
  entryStdin,
} from './build/bundle.js';
import { bundleOptions } from './build/bundle-options.js';
import { checkDeploy } from './cli/deploy-rules.js';
import { envTableOf } from './cli/env-table.js';
import { runNode } from './cli/run-node.js';

/**
 * The `runway` command. Each subcommand prints one line and exits non-zero
 * on bad input; never a stack trace. Exit codes: 0 done; 1 the work failed
 * (a build error, a bundle over budget, a broken deploy rule, the server
 * exited 1); 2 a usage error (unknown command or option, missing argument).
 */

const USAGE: Record<string, string> = {
  '': `usage: runway <command> [options]

commands:
  build <entry>        bundle a service into one file (default ${DEFAULT_OUTFILE})
  dev <entry>          rebuild on change and restart the server with a real SIGTERM
  start [bundle]       run a built bundle (default ${DEFAULT_OUTFILE})
  check-deploy [dir]   check the Dockerfile, .dockerignore, .gcloudignore and deploy/ manifests
  env <entry>          every variable the service reads, as a Markdown table

runway <command> --help for its options. Exit codes: 0 done, 1 failed, 2 usage error.`,
  build: `usage: runway build <entry> [--outfile ${DEFAULT_OUTFILE}] [--budget-kb ${DEFAULT_BUDGET_BYTES / 1024}] [--if-stale]

<entry> is a module whose default export is a Hono app or any { fetch },
optionally exporting env (a valibot v.object), setup(deps) and commands.
Prints the size of each package in the bundle; exits 1 over the budget.
--if-stale skips the build when the bundle is newer than the entry's folder.`,
  dev: `usage: runway dev <entry> [--outfile .runway/dev/server.js]

Rebuilds on every change; node --watch restarts the server with SIGTERM, so
the drain runs on every save. LOG_LEVEL defaults to debug.`,
  start: `usage: runway start [bundle] [command]

Runs the bundle (default ${DEFAULT_OUTFILE}) with source maps; signals reach it.
With a command (one the entry exports in commands, such as migrate) runs it
and exits. The exit code is the server's.`,
  env: `usage: runway env <entry>

Prints every variable the service reads (the runtime's, its modules', its
own env) as a Markdown table: name, who declares it, default, secret, meaning.`,
  'check-deploy': `usage: runway check-deploy [dir]

Checks dir (default .): Dockerfile bases and user, .dockerignore and
.gcloudignore, and the Cloud Run, ECS and Kubernetes manifests under deploy/
against the runtime's settings. One line per broken rule; exits 1 if any.`,
};

class UsageError extends Error {}
/** The work cannot be done as asked (a missing file): one line, exit 1. */
class Failure extends Error {}

const say = (line: string) => process.stdout.write(`${line}\n`);
const fail = (line: string) => process.stderr.write(`runway: ${line}\n`);
const usage = (text: string) => {
  say(text);
  return 0;
};

type Options = Record<string, { type: 'string' | 'boolean' }>;

function parse(args: string[], options: Options = {}) {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { help: { type: 'boolean', short: 'h' }, ...options },
      allowPositionals: true,
    });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function build(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    outfile: { type: 'string' },
    'budget-kb': { type: 'string' },
    'if-stale': { type: 'boolean' },
  });
  if (values.help) return usage(USAGE.build as string);
  const [entry, extra] = positionals;
  if (!entry || extra) throw new UsageError('build takes one <entry>');
  const budgetKb = values['budget-kb'] === undefined ? DEFAULT_BUDGET_BYTES / 1024 : Number(values['budget-kb']);
  if (!Number.isFinite(budgetKb) || budgetKb <= 0) throw new UsageError('--budget-kb takes a positive number');
  const result = await bundleService({
    entry,
    outfile: (values.outfile as string | undefined) ?? DEFAULT_OUTFILE,
    budgetBytes: budgetKb * 1024,
    ifStale: values['if-stale'] ? { inputs: ['package.json', 'package-lock.json'] } : undefined,
  });
  if (result.overBudget) fail(`${result.outfile} is over the ${budgetKb} KB budget`);
  return result.overBudget ? 1 : 0;
}

/** Writes a build's files only when it succeeded (esbuild, with `write: false`). */
const writeGoodBuilds: Plugin = {
  name: 'write-good-builds',
  setup(build) {
    build.onEnd((result) => {
      if (result.errors.length > 0) {
        fail('the rebuild failed: the server keeps running the last good build');
        return;
      }
      for (const file of result.outputFiles ?? []) {
        // Unchanged bytes are not written: node --watch would restart the server for nothing.
        if (existsSync(file.path) && Buffer.from(file.contents).equals(readFileSync(file.path))) continue;
        mkdirSync(dirname(file.path), { recursive: true });
        writeFileSync(file.path, file.contents);
      }
    });
  },
};

async function dev(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { outfile: { type: 'string' } });
  if (values.help) return usage(USAGE.dev as string);
  const [entry, extra] = positionals;
  if (!entry || extra) throw new UsageError('dev takes one <entry>');
  checkEntry(entry);
  const outfile = (values.outfile as string | undefined) ?? '.runway/dev/server.js';
  const ctx = await context({
    ...bundleOptions,
    stdin: entryStdin(entry),
    outfile,
    sourcemap: 'linked',
    logLevel: 'info',
    // Written by writeGoodBuilds, never by esbuild: a failed rebuild leaves the last good bundle
    // running, and node --watch restarts only on one that built.
    write: false,
    plugins: [...bundleOptions.plugins, writeGoodBuilds],
  });
  try {
    await ctx.rebuild();
  } catch {
    await ctx.dispose();
    return 1;
  }
  await ctx.watch();
  const code = await runNode(['--watch', '--enable-source-maps', outfile], {
    LOG_LEVEL: 'debug',
    ...process.env,
  });
  await ctx.dispose();
  return code;
}

async function start(args: string[]): Promise<number> {
  const { values, positionals } = parse(args);
  if (values.help) return usage(USAGE.start as string);
  const [bundle = DEFAULT_OUTFILE, command, extra] = positionals;
  if (extra) throw new UsageError('start takes at most [bundle] [command]');
  if (!existsSync(bundle)) throw new Failure(`${bundle}: no such file (run runway build <entry> first)`);
  if (!statSync(bundle).isFile() || !/\.m?js$/.test(bundle)) {
    throw new Failure(`${bundle}: not a bundle (a .js or .mjs file that runway build wrote)`);
  }
  return runNode(['--enable-source-maps', resolve(bundle), ...(command ? [command] : [])]);
}

function checkDeployCommand(args: string[]): number {
  const { values, positionals } = parse(args);
  if (values.help) return usage(USAGE['check-deploy'] as string);
  const [dir = '.', extra] = positionals;
  if (extra) throw new UsageError('check-deploy takes at most one [dir]');
  if (!existsSync(dir)) throw new Failure(`${dir}: no such directory`);
  if (!existsSync(join(dir, 'Dockerfile'))) {
    throw new Failure(`${dir}: no Dockerfile (check-deploy checks a Dockerfile, its ignore files and deploy/)`);
  }
  const findings = checkDeploy(resolve(dir));
  for (const f of findings) say(`${f.file}: ${f.field}: ${f.problem}. Fix: ${f.fix}.`);
  if (findings.length > 0) {
    say(`check-deploy: ${findings.length} problem${findings.length === 1 ? '' : 's'}`);
    return 1;
  }
  say('check-deploy: Dockerfile, .dockerignore, .gcloudignore and deploy/ pass every rule');
  return 0;
}

async function env(args: string[]): Promise<number> {
  const { values, positionals } = parse(args);
  if (values.help) return usage(USAGE.env as string);
  const [entry, extra] = positionals;
  if (!entry || extra) throw new UsageError('env takes one <entry>');
  checkEntry(entry);
  say(await envTableOf(entry));
  return 0;
}

const commands: Record<string, (args: string[]) => number | Promise<number>> = {
  build,
  dev,
  start,
  'check-deploy': checkDeployCommand,
  env,
};

export async function cli(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    say(USAGE[''] as string);
    return name === undefined ? 2 : 0;
  }
  // Own names only: `constructor` or `toString` would find Object's, and crash on what they return.
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  try {
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)} (runway --help lists them)`);
    return await command(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      fail(`${error.message}`);
      return 2;
    }
    if (error instanceof BundleError || error instanceof Failure) {
      fail(error.message);
      return 1;
    }
    fail(`${name} failed: ${(error as Error)?.message ?? String(error)}`);
    return 1;
  }
}
