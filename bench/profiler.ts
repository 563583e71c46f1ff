// Profiler benchmark: how faithful and how cheap the shader-level profiler is on a ResNet-18
// DenseCL training step (Trainer: zeroGrad, forward + backward, key encoder, losses, SGD).
//   (a) the step without the profiler: wall time of the step until the GPU is idle, and its GPU
//       part (wall minus the CPU time spent recording it: the step is one submission, so the
//       GPU starts when recording ends);
//   (b) the same step with the profiler attached (Trainer.profileStep);
//   (c) the sum of the per-kernel GPU times of the profile.
// Unprofiled and profiled steps alternate, so load drift on shared cores hits both alike;
// figures are medians. Writes profiler.{json,md}, the per-kernel table of a step and
// profile_split.svg (the top kernels' share of the step).
// Sizes: PROFILE_WIDTH (0.25), PROFILE_BATCH (16), PROFILE_IMG (32), PROFILE_STEPS (7 pairs).
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { aggregate, markdownTable as kernelTable, Rng, type AggregateRow, type KernelRecord } from '../engine/index.js';
import { Trainer } from '../train/trainer.js';
import type { BenchContext } from './lib/context.js';
import type { Measurement } from './lib/timing.js';
import { writeReport } from './lib/report.js';

const num = (name: string, dflt: number) => (process.env[name] ? Number(process.env[name]) : dflt);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const cpuMs = (c0: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
};
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const pct = (x: number, d = 1) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(d)}%`;

interface Sample {
  wallMs: number;
  cpuMs: number;
}

export async function run(ctx: BenchContext): Promise<void> {
  const { rt } = ctx;
  const width = num('PROFILE_WIDTH', 0.25);
  const B = num('PROFILE_BATCH', 16);
  const S = num('PROFILE_IMG', 32);
  const pairs = num('PROFILE_STEPS', process.env.BENCH_QUICK ? 3 : 7);
  const trainer = new Trainer(rt, { arch: 'resnet18', width, smallStem: true, batchSize: B, imgSize: S, dim: 32, queueSize: 4 * B, bnGroups: 4, seed: 0 });
  const label = `DenseCL ResNet-18 (width ${width}, small stem), batch ${B}, ${S}x${S}`;
  const rng = new Rng(7);
  const views = [0, 1].map(() => Float32Array.from({ length: B * 3 * S * S }, () => rng.normal()));
  const [q, k] = views;

  try {
    // Two warm-up steps: pipelines compile, the pool fills, bind groups are cached.
    for (let i = 0; i < 2; i++) await trainer.trainStep(q, k);
    await rt.sync();

    const plain: (Sample & { recordMs: number; submits: number })[] = [];
    const profiled: (Sample & { spanMs: number; sumMs: number; recordMs: number })[] = [];
    const records: KernelRecord[][] = [];
    let method = '';
    for (let i = 0; i < pairs; i++) {
      {
        const s0 = rt.stats.submits;
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const pending = trainer.trainStep(q, k);
        const recordMs = performance.now() - t0;
        const submits = rt.stats.submits - s0;
        await pending;
        await rt.sync();
        plain.push({ wallMs: performance.now() - t0, cpuMs: cpuMs(c0), recordMs, submits });
      }
      {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const { profile } = await trainer.profileStep(q, k);
        await rt.sync();
        const wallMs = performance.now() - t0;
        const rs = profile.records;
        const spanMs = Math.max(...rs.map((r) => r.endMs)) - Math.min(...rs.map((r) => r.startMs));
        // Recording ends with the last dispatch (its CPU time since profiling began).
        profiled.push({ wallMs, cpuMs: cpuMs(c0), spanMs, sumMs: rs.reduce((s, r) => s + r.gpuMs, 0), recordMs: Math.max(...rs.map((r) => r.cpuMs)) });
        records.push(rs);
        method = profile.method;
      }
      console.log(`  pair ${i + 1}/${pairs}: plain ${fmt(plain[i].wallMs)} ms (recording ${fmt(plain[i].recordMs)} ms), profiled ${fmt(profiled[i].wallMs)} ms, kernel sum ${fmt(profiled[i].sumMs)} ms`);
    }

    const plainWall = median(plain.map((p) => p.wallMs));
    const plainGpu = median(plain.map((p) => p.wallMs - p.recordMs));
    const profWall = median(profiled.map((p) => p.wallMs));
    const span = median(profiled.map((p) => p.spanMs));
    const sum = median(profiled.map((p) => p.sumMs));
    const plainRecord = median(plain.map((p) => p.recordMs));
    const profRecord = median(profiled.map((p) => p.recordMs));
    const plainCpu = median(plain.map((p) => p.cpuMs));
    const profCpu = median(profiled.map((p) => p.cpuMs));
    const dispatches = records[0].length;
    const flops = records[0].reduce((s, r) => s + r.flops, 0);
    const bytes = records[0].reduce((s, r) => s + r.bytes, 0);

    // Per kernel over all profiled steps, scaled to one step.
    const n = records.length;
    const perStep = (rows: AggregateRow[]) => rows.map((r) => ({ ...r, calls: r.calls / n, totalMs: r.totalMs / n }));
    const byKernel = perStep(aggregate(records.flat(), 'kernel'));
    const byOp = perStep(aggregate(records.flat(), 'op'));
    const top3 = byKernel.slice(0, 3);

    const dir = join(process.cwd(), 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'profile_split.svg'), splitSvg(byKernel, 15, `Per-kernel GPU time of one step: ${label} (${fmt(sum)} ms of kernels, ${method})`));

    const measurement = (name: string, xs: Sample[]): Measurement => {
      const ms = median(xs.map((x) => x.wallMs));
      const mean = xs.reduce((s, x) => s + x.wallMs, 0) / xs.length;
      const sd = Math.sqrt(xs.reduce((s, x) => s + (x.wallMs - mean) ** 2, 0) / Math.max(1, xs.length - 1));
      return {
        workload: `${label} step`, name, msPerOp: ms, msPerOpMin: Math.min(...xs.map((x) => x.wallMs)),
        gflops: flops / (ms * 1e6), gbps: bytes / (ms * 1e6), reps: 1, samples: xs.length,
        rmePercent: (100 * 1.96 * sd) / Math.sqrt(xs.length) / mean, cpuMsPerOp: median(xs.map((x) => x.cpuMs)),
      };
    };

    const sumRatio = sum / plainGpu;
    const overheadWall = profWall / plainWall - 1;
    const overheadCpu = profCpu / plainCpu - 1;
    const overheadGpu = span / plainGpu - 1;
    const gaps = span - sum;
    const accuracy = [
      '| figure (median of ' + n + ' steps) | ms | |',
      '| --- | ---: | --- |',
      `| (a) unprofiled step, wall until the GPU is idle | ${fmt(plainWall)} | CPU time ${fmt(plainCpu)} ms |`,
      `| (a) of which recording on the CPU | ${fmt(plainRecord)} | ${plain[0].submits} submissions: the step's work at the end of recording, then one per loss readback |`,
      `| (a) unprofiled step, GPU part (wall minus recording) | ${fmt(plainGpu)} | includes the loss readbacks' latency |`,
      `| (b) profiled step, wall until the GPU is idle | ${fmt(profWall)} | ${pct(overheadWall)} vs (a) (CPU time ${fmt(profCpu)} ms, ${pct(overheadCpu)}) |`,
      `| (b) of which recording on the CPU (to the last dispatch) | ${fmt(profRecord)} | ${fmt(profRecord - plainRecord)} ms more than (a): a compute pass and timestamp writes per dispatch |`,
      `| (b) profiled step, GPU span first kernel start to last kernel end | ${fmt(span)} | ${pct(overheadGpu)} vs (a)'s GPU part |`,
      `| (c) sum of per-kernel GPU times | ${fmt(sum)} | ${fmt(100 * sumRatio)}% of (a)'s GPU part (target 90-110%) |`,
      `| gaps between kernels in the profiled span, (b) span - (c) | ${fmt(gaps)} | ${dispatches} dispatches, ${fmt((1000 * gaps) / Math.max(1, dispatches - 1))} us per gap |`,
    ].join('\n');
    const verdictSum = Math.abs(sumRatio - 1) <= 0.1 ? 'within' : 'outside';
    const verdictOverhead = overheadWall < 0.05 ? 'under' : 'over';
    const notes = [
      `Timing: ${method === 'timestamps' ? 'GPU timestamp queries, one compute pass per dispatch, one resolve and readback per submission' : 'coarse fallback (no timestamp-query): one submission per kernel'}. Steps alternate unprofiled / profiled after 2 warm-up steps.`,
      `Sum of kernel times / unprofiled GPU part = ${fmt(sumRatio, 3)}: ${verdictSum} the 10% target. The unprofiled GPU part is wall minus recording, so it also holds the submit and readback latency and the GPU's idle time between kernels; the kernel sum counts only the time inside the passes.`,
      `Profiled / unprofiled step by wall time = ${fmt(profWall / plainWall, 3)} (${pct(overheadWall)}): ${verdictOverhead} the 5% target; by process CPU time ${pct(overheadCpu)}. The extra wall time splits into GPU time (span ${pct(overheadGpu)} against the unprofiled GPU part: a compute pass boundary and two timestamp writes per kernel instead of one pass for the step), CPU recording (${fmt(profRecord - plainRecord)} ms more: the pass and query bookkeeping per dispatch) and the wait for the one resolve and readback per submission after the GPU finishes (the rest, about ${fmt(profWall - plainWall - (span - plainGpu) - (profRecord - plainRecord))} ms).`,
      `Top kernels by GPU time per step: ${top3.map((r, i) => `${i + 1}. \`${r.name}\` ${fmt(r.totalMs, 2)} ms (${fmt(100 * r.share)}%, ${fmt(r.gflops, 2)} GFLOP/s)`).join('; ')}.`,
      'Timings are on shared CPU cores (the adapter is a CPU Vulkan driver in this process): single-step wall times move by several percent with other jobs, so read the overhead together with its CPU-time figure and the spread in the detail table.',
    ];
    const out = writeReport({
      suite: 'profiler',
      adapter: ctx.adapter,
      ours: 'unprofiled',
      measurements: [measurement('unprofiled', plain), measurement('profiled', profiled)],
      notes,
      sections: [
        { title: 'Profiler accuracy and overhead', markdown: accuracy },
        { title: 'Per-kernel time split', markdown: '![per-kernel share of the step](profile_split.svg)' },
        { title: `Per kernel, one step (${dispatches} dispatches, mean of ${n} profiled steps)`, markdown: kernelTable(byKernel) },
        { title: 'Per op, one step', markdown: kernelTable(byOp).replace('| kernel |', '| op |') },
      ],
      extra: {
        config: { width, batch: B, img: S, pairs, method },
        plain, profiled: profiled, sumOverGpu: sumRatio, overheadWall, overheadCpu, overheadGpuSpan: overheadGpu,
        dispatches, flops, bytes, top3: top3.map((r) => ({ kernel: r.name, ms: r.totalMs, share: r.share })),
      },
    });
    console.log(`\n${accuracy}\n\n${notes.join('\n')}\nwrote ${out.markdown}`);
  } finally {
    trainer.destroy();
  }
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A horizontal bar chart of the top kernels' share of the summed kernel time. */
function splitSvg(rows: AggregateRow[], top: number, title: string): string {
  const shown = rows.slice(0, top);
  const rest = rows.slice(top);
  const bars = rest.length ? [...shown, { name: `${rest.length} other kernels`, share: rest.reduce((s, r) => s + r.share, 0), totalMs: rest.reduce((s, r) => s + r.totalMs, 0) }] : shown;
  const [labelW, barW, rowH, top0] = [430, 380, 22, 46];
  const maxShare = Math.max(...bars.map((b) => b.share), 1e-9);
  const height = top0 + bars.length * rowH + 30;
  const width = labelW + barW + 140;
  const lines = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  bars.forEach((b, i) => {
    const y = top0 + i * rowH;
    const w = Math.max(1, (barW * b.share) / maxShare);
    const name = b.name.length > 64 ? b.name.slice(0, 61) + '...' : b.name;
    lines.push(
      `<text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${esc(name)}</text>`,
      `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${i < shown.length ? '#3b6fb6' : '#999'}"><title>${esc(b.name)}</title></rect>`,
      `<text x="${labelW + w + 6}" y="${y + 15}">${(100 * b.share).toFixed(1)}% (${b.totalMs.toFixed(2)} ms)</text>`,
    );
  });
  lines.push(`<text x="${labelW}" y="${height - 10}" fill="#555">share of the summed kernel time of one step</text>`, '</svg>');
  return lines.join('\n') + '\n';
}
