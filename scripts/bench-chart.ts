/**
 * A grouped bar chart as a plain SVG string: no dependency, readable on
 * GitHub, committed as bench/chart.svg by a full `npm run bench`.
 */
export interface Chart {
  title: string;
  groups: { label: string; bars: { label: string; value: number }[] }[];
}

const COLORS = ['#9aa5b1', '#f4a259', '#5b8e7d', '#3454d1', '#bc4b51', '#8cb369'];
const xmlText = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function barChart({ title, groups }: Chart): string {
  const barWidth = 28;
  const gap = 36;
  const plotHeight = 220;
  const left = 70;
  const top = 40;
  const seriesCount = Math.max(...groups.map((g) => g.bars.length));
  const groupWidth = seriesCount * barWidth + gap;
  const width = left + groups.length * groupWidth + 20;
  const height = top + plotHeight + 90;
  const max = Math.max(1, ...groups.flatMap((g) => g.bars.map((b) => b.value)));
  const scale = (value: number) => (value / max) * plotHeight;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<title>${xmlText(title)}</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${left}" y="20" font-size="13" font-weight="bold">${xmlText(title)}</text>`,
  ];
  for (let tick = 0; tick <= 4; tick++) {
    const value = (max * tick) / 4;
    const y = top + plotHeight - scale(value);
    parts.push(`<line x1="${left - 4}" x2="${width - 10}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(
      `<text x="${left - 8}" y="${y + 4}" text-anchor="end">${Math.round(value).toLocaleString('en-US')}</text>`,
    );
  }
  groups.forEach((group, g) => {
    const x0 = left + g * groupWidth + gap / 2;
    group.bars.forEach((bar, b) => {
      const h = scale(bar.value);
      const x = x0 + b * barWidth;
      parts.push(
        `<rect x="${x}" y="${top + plotHeight - h}" width="${barWidth - 4}" height="${h}" fill="${COLORS[b % COLORS.length]}"><title>${xmlText(`${bar.label}: ${Math.round(bar.value)}`)}</title></rect>`,
      );
    });
    parts.push(
      `<text x="${x0 + (group.bars.length * barWidth) / 2}" y="${top + plotHeight + 16}" text-anchor="middle">${xmlText(group.label)}</text>`,
    );
  });
  const legend = groups[0]?.bars ?? [];
  legend.forEach((bar, b) => {
    const x = left + b * 130;
    const y = top + plotHeight + 40;
    parts.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${COLORS[b % COLORS.length]}"/>`);
    parts.push(`<text x="${x + 16}" y="${y + 10}">${xmlText(bar.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
