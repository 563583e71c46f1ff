// Reports of a profile: tables aggregated per kernel and per op (calls, total and mean GPU time,
// share of the step, GFLOP/s, GB/s, shares of the measured peaks, how much of it is estimated)
// and Chrome-trace JSON for Perfetto with the CPU-side recording and the GPU kernels on separate
// tracks.
import type { KernelRecord, ProfileResult } from './profiler.js';
import type { Peak } from './peak/peak.js';

export interface AggregateRow {
  name: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  share: number;
  gflops: number;
  gbps: number;
  /** GFLOP/s and GB/s as fractions of the measured peaks given, if any. */
  peakFlops: number | null;
  peakBandwidth: number | null;
  /** Fraction of totalMs that is a share of a group's measured time (see ProfileOptions.groupMs). */
  estimated: number;
}

export function aggregate(
  records: KernelRecord[],
  by: 'kernel' | 'op',
  peak?: Pick<Peak, 'gflops' | 'gbps'>,
): AggregateRow[] {
  const groups = new Map<string, KernelRecord[]>();
  for (const r of records) {
    const key = by === 'kernel' ? r.kernel : r.op;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(r);
  }
  const total = records.reduce((s, r) => s + r.gpuMs, 0);
  const rows: AggregateRow[] = [];
  for (const [name, rs] of groups) {
    const ms = rs.reduce((s, r) => s + r.gpuMs, 0);
    const flops = rs.reduce((s, r) => s + r.flops, 0);
    const bytes = rs.reduce((s, r) => s + r.bytes, 0);
    const estMs = rs.reduce((s, r) => s + (r.estimated ? r.gpuMs : 0), 0);
    const gflops = ms > 0 ? flops / (ms * 1e6) : 0;
    const gbps = ms > 0 ? bytes / (ms * 1e6) : 0;
    rows.push({
      name,
      calls: rs.length,
      totalMs: ms,
      meanMs: ms / rs.length,
      share: total > 0 ? ms / total : 0,
      gflops,
      gbps,
      peakFlops: peak ? gflops / peak.gflops : null,
      peakBandwidth: peak ? gbps / peak.gbps : null,
      estimated: ms > 0 ? estMs / ms : 0,
    });
  }
  return rows.sort((a, b) => b.totalMs - a.totalMs);
}

const pct = (x: number | null) => (x === null ? '-' : (100 * x).toFixed(1) + '%');

function cells(r: AggregateRow): string[] {
  return [
    String(r.calls),
    r.totalMs.toFixed(3),
    r.meanMs.toFixed(4),
    pct(r.share),
    r.gflops.toFixed(2),
    r.gbps.toFixed(2),
    pct(r.peakFlops),
    pct(r.peakBandwidth),
    r.estimated > 0 ? pct(r.estimated) : '',
  ];
}
const HEAD = ['calls', 'total ms', 'mean ms', 'share', 'GFLOP/s', 'GB/s', '% peak FLOP/s', '% peak GB/s', 'estimated'];

/**
 * Short names for a table's rows that stay distinct: a kernel's name is its shader and its
 * variant's defines (`conv2d_gemm[CHECK=false,NTC=3,PAD=true,...]`); of the defines only those
 * whose values differ between the rows of the same shader are kept (`conv2d_gemm[CHECK=false]`).
 * Two different names keep a define they differ in, so they never shorten to the same text.
 * A shader with one variant shows its name alone. The full names stay in the records, traces and JSON.
 */
export function shortKernelNames(names: readonly string[]): Map<string, string> {
  const parsed = names.map((name) => {
    const m = /^([^[]*)\[(.*)\]$/.exec(name);
    // Values may hold commas ("TC_WIN=0, 1, 2"): a define starts at a comma followed by KEY=.
    const parts = m ? m[2].split(/,(?=[A-Z_][A-Z0-9_]*=)/) : [];
    if (!m || !parts.every((d) => d.includes('='))) return { name, base: name, defines: new Map<string, string>() };
    return {
      name,
      base: m[1],
      defines: new Map(parts.map((d) => [d.slice(0, d.indexOf('=')), d.slice(d.indexOf('=') + 1)])),
    };
  });
  const varying = new Map<string, Set<string>>();
  for (const p of parsed) {
    const keys = varying.get(p.base) ?? new Set<string>();
    varying.set(p.base, keys);
    for (const q of parsed) {
      if (q.base !== p.base) continue;
      for (const k of new Set([...p.defines.keys(), ...q.defines.keys()]))
        if (p.defines.get(k) !== q.defines.get(k)) keys.add(k);
    }
  }
  return new Map(
    parsed.map((p) => {
      const kept = [...p.defines].filter(([k]) => varying.get(p.base)!.has(k)).map(([k, v]) => `${k}=${v}`);
      return [p.name, kept.length ? `${p.base}[${kept.join(',')}]` : p.base];
    }),
  );
}

export function formatTable(rows: AggregateRow[], title: string, limit = 30): string {
  const head = ['', ...HEAD];
  const shown = rows.slice(0, limit);
  const short = shortKernelNames(shown.map((r) => r.name));
  const body = shown.map((r) => [short.get(r.name)!, ...cells(r)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  const more = rows.length > limit ? `\n(${rows.length - limit} more)` : '';
  return [title, line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n') + more;
}

export function markdownTable(rows: AggregateRow[]): string {
  const out = [`| kernel | ${HEAD.join(' | ')} |`, `| --- |${' ---: |'.repeat(HEAD.length)}`];
  for (const r of rows) out.push(`| \`${r.name}\` | ${cells(r).join(' | ')} |`);
  return out.join('\n');
}

/** One line on the peaks the "% peak" columns are measured against. */
export function describePeak(peak: Peak): string {
  return `measured peak of this device: ${peak.gflops.toFixed(1)} GFLOP/s (FMA kernel), ${peak.gbps.toFixed(1)} GB/s (streaming copy), ${(1000 * peak.launchMs).toFixed(0)} us per one-workgroup dispatch (${peak.method})`;
}

/** Chrome-trace JSON (traceEvents, complete events 'X', microseconds), for Perfetto or chrome://tracing. */
export function chromeTrace(result: Pick<ProfileResult, 'records' | 'method'>): {
  traceEvents: object[];
  displayTimeUnit: string;
} {
  const events: object[] = [
    { name: 'process_name', ph: 'M', pid: 1, args: { name: 'densecl-webgpu' } },
    { name: 'thread_name', ph: 'M', pid: 1, tid: 1, args: { name: 'CPU: recording' } },
    { name: 'thread_name', ph: 'M', pid: 1, tid: 2, args: { name: `GPU: kernels (${result.method})` } },
  ];
  const recs = result.records;
  // GPU times are relative to the first kernel; place that at its CPU recording time.
  const shift = recs.length ? recs[0].cpuMs - recs[0].startMs : 0;
  for (const r of recs) {
    const args = {
      op: r.op,
      shapes: r.shapes,
      workgroups: r.workgroups.join('x'),
      flops: r.flops,
      bytes: r.bytes,
      estimated: r.estimated,
      interval: r.interval,
    };
    events.push({ name: r.op, cat: 'cpu', ph: 'X', pid: 1, tid: 1, ts: r.cpuMs * 1000, dur: 1, args });
    events.push({
      name: r.kernel,
      cat: 'gpu',
      ph: 'X',
      pid: 1,
      tid: 2,
      ts: (r.startMs + shift) * 1000,
      dur: Math.max(r.gpuMs * 1000, 0.001),
      args,
    });
  }
  return { traceEvents: events, displayTimeUnit: 'ms' };
}
