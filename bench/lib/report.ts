// Writes a suite's measurements as bench/results/<suite>.json and a markdown table .md, with
// the adapter they were measured on and the speed ratio of our engine to every other case.
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../train/io.js';
import type { Measurement } from './timing.js';

/** Where reports go: BENCH_RESULTS_DIR when set (tests write to a temporary folder), else bench/results. */
export function resultsDir(): string {
  return process.env.BENCH_RESULTS_DIR || join(process.cwd(), 'bench', 'results');
}

export interface SuiteReport {
  suite: string;
  /** The report's first line (default 'Benchmark: <suite>'). */
  title?: string;
  adapter: string;
  /** The case the ratios are taken for (ours / theirs, by time: > 1 means ours is faster). */
  ours: string;
  measurements: Measurement[];
  /** Free-form lines printed under the table: what was compared, caveats. */
  notes?: string[];
  /** Markdown sections printed first, before the measurement table (a suite's headline figures). */
  leadSections?: { title: string; markdown: string }[];
  /** Heading of the measurement table (none by default). */
  tableTitle?: string;
  /** Further markdown sections, printed after the notes (tables a suite builds itself). */
  sections?: { title: string; markdown: string }[];
  /** Suite-specific figures, written to the JSON only. */
  extra?: Record<string, unknown>;
}

export interface WrittenReport {
  json: string;
  markdown: string;
  table: string;
}

const fmt = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/** ours/theirs speed for every case other than `ours`, per workload. */
export function ratios(r: SuiteReport): { workload: string; versus: string; ratio: number }[] {
  const out: { workload: string; versus: string; ratio: number }[] = [];
  for (const m of r.measurements) {
    if (m.name === r.ours) continue;
    const mine = r.measurements.find((x) => x.workload === m.workload && x.name === r.ours);
    if (mine) out.push({ workload: m.workload, versus: m.name, ratio: m.msPerOp / mine.msPerOp });
  }
  return out;
}

export function markdownTable(r: SuiteReport): string {
  const workloads = [...new Set(r.measurements.map((m) => m.workload))];
  const names = [...new Set(r.measurements.map((m) => m.name))];
  const others = names.filter((n) => n !== r.ours);
  const head = [
    'workload',
    ...names.flatMap((n) => [`${n} ms`, `${n} GFLOP/s`]),
    ...others.map((n) => `${r.ours}/${n}`),
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  const rs = ratios(r);
  for (const w of workloads) {
    const cells = [w];
    for (const n of names) {
      const m = r.measurements.find((x) => x.workload === w && x.name === n);
      cells.push(m ? fmt(m.msPerOp, 3) : '-', m ? fmt(m.gflops) : '-');
    }
    for (const n of others) {
      const q = rs.find((x) => x.workload === w && x.versus === n);
      cells.push(q ? `${fmt(q.ratio)}x` : '-');
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

export function writeReport(r: SuiteReport, dir = resultsDir()): WrittenReport {
  const date = new Date().toISOString();
  // Other jobs on the same cores slow the wall clock down; say how busy the machine was.
  const load = loadavg().map((x) => x.toFixed(2));
  const cores = cpus().length;
  const table = markdownTable(r);
  const detail = [
    '| workload | case | ms/op (median) | ms/op (best) | GFLOP/s | GB/s | CPU ms/op | ops per batch | samples | rme % |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...r.measurements.map(
      (m) =>
        `| ${m.workload} | ${m.name} | ${fmt(m.msPerOp, 3)} | ${fmt(m.msPerOpMin, 3)} | ${fmt(m.gflops)} | ${fmt(m.gbps)} | ${fmt(m.cpuMsPerOp, 1)} | ${m.reps} | ${m.samples} | ${fmt(m.rmePercent, 1)} |`,
    ),
  ].join('\n');
  const md = [
    `# ${r.title ?? `Benchmark: ${r.suite}`}`,
    '',
    `Adapter: ${r.adapter}  `,
    `Date: ${date}, Node ${process.version}, ${process.platform}/${process.arch}, ${cores} CPU cores, load average ${load.join(' / ')} (1/5/15 min) when written`,
    '',
    ...(r.leadSections ?? []).flatMap((x) => [`## ${x.title}`, '', x.markdown, '']),
    ...(r.tableTitle ? [`## ${r.tableTitle}`, ''] : []),
    table,
    '',
    `Ratios are ${r.ours}/other by time per op: above 1 means ${r.ours} is faster.`,
    'CPU ms/op (detail table) is the process CPU time of all threads per op: the CPU Vulkan driver runs in this process, so on shared cores it is steadier than the wall clock.',
    '',
    ...(r.notes ?? []).map((n) => `- ${n}`),
    '',
    ...(r.sections ?? []).flatMap((x) => [`## ${x.title}`, '', x.markdown, '']),
    '## Detail',
    '',
    detail,
    '',
  ].join('\n');
  const json = join(dir, `${r.suite}.json`);
  const markdown = join(dir, `${r.suite}.md`);
  const text = new TextEncoder();
  writeFileAtomic(
    json,
    text.encode(
      JSON.stringify(
        { ...r, date, node: process.version, cores, loadavg: load.map(Number), ratios: ratios(r) },
        null,
        2,
      ) + '\n',
    ),
  );
  writeFileAtomic(markdown, text.encode(md));
  return { json, markdown, table };
}
