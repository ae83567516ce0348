import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DURATION_S, type Program, start, stop, waitFor200, wrkAsync } from './bench-lib.js';
import { freePort } from './free-port.js';

/**
 * Where a request's CPU goes (`BENCH_ONLY=profile`): each program served
 * GET `path` under wrk with `--cpu-prof`, its profile's top self-time
 * functions printed, and a flame graph written as an SVG beside the run's
 * JSON (bench/results/profile-<name>.svg). The profiler's own cost is in
 * every figure alike, so compare the programs with each other, not with
 * the throughput rows.
 */

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  program: string;
  top: { fn: string; percent: number }[];
  svg: string;
}

const frameName = (frame: CpuProfile['nodes'][number]['callFrame']) =>
  `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;

/** Self time per function, in percent of the samples that were not idle. */
function topSelf(profile: CpuProfile, count: number) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') return;
    const dt = profile.timeDeltas[i] ?? 0;
    busy += dt;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + dt);
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([fn, time]) => ({ fn, percent: (100 * time) / Math.max(1, busy) }));
}

const escapeXml = (text: string) => text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** A flame graph: each frame as wide as the time spent in it and below it, callers under callees. */
export function flameGraph(profile: CpuProfile, title: string): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = new Map<number, number>();
  const sum = (id: number): number => {
    const node = byId.get(id);
    const value = (self.get(id) ?? 0) + (node?.children ?? []).reduce((acc, child) => acc + sum(child), 0);
    total.set(id, value);
    return value;
  };
  const root = profile.nodes[0]?.id ?? 1;
  const all = sum(root) || 1;
  const width = 1200;
  const row = 16;
  const rects: string[] = [];
  let depthMax = 0;
  const place = (id: number, x: number, depth: number) => {
    const node = byId.get(id);
    if (!node) return;
    const w = ((total.get(id) ?? 0) / all) * width;
    if (w < 0.5) return;
    depthMax = Math.max(depthMax, depth);
    const name = frameName(node.callFrame);
    const label =
      w > 40
        ? `<text x="${(x + 3).toFixed(1)}" y="${-depth * row - 4}">${escapeXml(name.slice(0, Math.floor(w / 6.5)))}</text>`
        : '';
    const percent = ((100 * (total.get(id) ?? 0)) / all).toFixed(1);
    rects.push(
      `<g><title>${escapeXml(name)} (${percent}%)</title><rect x="${x.toFixed(1)}" y="${-(depth + 1) * row}" width="${w.toFixed(1)}" height="${row - 1}" fill="hsl(${20 + ((depth * 37) % 40)},80%,${60 + ((depth * 13) % 20)}%)"/>${label}</g>`,
    );
    let at = x;
    for (const child of node.children ?? []) {
      place(child, at, depth + 1);
      at += ((total.get(child) ?? 0) / all) * width;
    }
  };
  place(root, 0, 0);
  const height = (depthMax + 2) * row + 20;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="10">`,
    `<title>${escapeXml(title)}</title>`,
    `<text x="4" y="14" font-size="12">${escapeXml(title)}</text>`,
    `<g transform="translate(0 ${height})">`,
    ...rects,
    '</g></svg>',
  ].join('\n');
}

export async function benchProfiles(
  programs: Program[],
  path: string,
  outDir: string,
  node = process.execPath,
): Promise<ProfileRow[]> {
  const rows: ProfileRow[] = [];
  for (const program of programs) {
    const slug = program.name
      .replace(/[^a-z0-9]+/gi, '-')
      .replace(/^-|-$/g, '')
      .toLowerCase();
    const dir = join('.cache/bench/profiles', slug);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const profiled: Program = {
      ...program,
      command: (file) => [
        node,
        '--cpu-prof',
        `--cpu-prof-dir=${dir}`,
        '--import',
        './bench/fixtures/exit-on-sigterm.mjs',
        file,
      ],
    };
    const child = start(profiled, port);
    try {
      await waitFor200(port, '/healthz', 10_000);
      await wrkAsync(port, path, 1);
      await wrkAsync(port, path, DURATION_S);
    } finally {
      await stop(child);
    }
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
    if (!file) throw new Error(`${program.name}: no CPU profile written`);
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const svg = join(outDir, `profile-${slug}.svg`);
    writeFileSync(svg, flameGraph(profile, `${program.name}: GET ${path} under wrk -c64, --cpu-prof`));
    rows.push({ program: program.name, top: topSelf(profile, 15), svg });
  }
  return rows;
}
