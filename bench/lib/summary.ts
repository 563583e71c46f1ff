// bench/results/README.md: one page over every suite's report: the adapter, and per suite a
// link to its markdown and its first table. Suites not run this time keep their last report
// (its own date line says when it was measured).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resultsDir } from './report.js';

/** The first markdown table of a report (its headline figures). */
function firstTable(md: string): string {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  if (start < 0) return '';
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

export function writeSummary(adapter: string, ranNow: string[], dir = resultsDir()): string {
  const reports = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.md') && f !== 'README.md')
        .sort()
    : [];
  const out = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\` on ${new Date().toISOString()}.  `,
    `Adapter: ${adapter}  `,
    `Suites run this time: ${ranNow.join(', ')}; the others show their last report (see its date).`,
    '',
  ];
  for (const f of reports) {
    const md = readFileSync(join(dir, f), 'utf8');
    const date = /^Date: (\S+?),?\s/m.exec(md)?.[1] ?? 'unknown date';
    out.push(`## [${f.replace(/\.md$/, '')}](${f})`, '', `Measured ${date}.`, '', firstTable(md), '');
    if (f === 'profiler.md' && existsSync(join(dir, 'profile_split.svg')))
      out.push('![per-kernel time split of a step](profile_split.svg)', '');
  }
  const path = join(dir, 'README.md');
  writeFileSync(path, out.join('\n'));
  return path;
}
