import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { BundleError } from '../build/bundle.js';
import { bundleOptions } from '../build/bundle-options.js';
import { describeVariables, type VariableDoc } from '../config/describe.js';
import { type EnvInput, partsOf } from '../config/env-part.js';
import { composeEnv } from '../config/load.js';

/**
 * `runway env <entry>`: every variable a service reads (the runtime's, its
 * modules', its own) as one Markdown table, from the composed schema: the
 * docs of a service cannot drift from what it validates. The same table
 * as this repository's docs/configuration.md (`npm run docs:config`).
 */

/** The table, its columns padded as a Markdown formatter pads them (a run on an up-to-date page changes nothing). */
export function variableTable(variables: readonly VariableDoc[]): string {
  const cells = variables.map((v) => [
    `\`${v.name}\``,
    v.part,
    v.default ? `\`${v.default}\`` : '—',
    v.secret ? 'yes' : 'no',
    `${v.required ? 'Required. ' : ''}${v.platform ? 'Set by the platform. ' : ''}${v.doc}`,
  ]);
  const header = ['variable', 'from', 'default', 'secret', 'meaning'];
  const width = (text: string) => [...text].length;
  const widths = header.map((title, i) => Math.max(width(title), ...cells.map((row) => width(row[i] ?? ''))));
  const line = (row: string[]) =>
    `| ${row.map((cell, i) => `${cell}${' '.repeat((widths[i] ?? 0) - width(cell))}`).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.map(line)].join('\n');
}

/** The `env` a service module exports, read by bundling the module and importing the result. */
export async function envOfEntry(entry: string): Promise<EnvInput | undefined> {
  const dir = resolve('.runway/env');
  mkdirSync(dir, { recursive: true });
  const outfile = join(dir, `entry-${process.pid}.mjs`);
  try {
    await build({
      ...bundleOptions,
      stdin: {
        contents: `import * as service from ${JSON.stringify(resolve(entry))};\nexport default service;`,
        resolveDir: process.cwd(),
        sourcefile: 'runway-env.js',
      },
      outfile,
      logLevel: 'silent',
    }).catch((error: { errors?: { text: string }[] }) => {
      throw new BundleError(error.errors?.[0]?.text ?? String(error));
    });
    const service = (await import(pathToFileURL(outfile).href)) as { default: { env?: EnvInput } };
    return service.default.env;
  } finally {
    rmSync(outfile, { force: true });
  }
}

export async function envTableOf(entry: string): Promise<string> {
  return variableTable(describeVariables(composeEnv(partsOf(await envOfEntry(entry))).parts));
}
