// The contrastive loss alone (forward + backward, D = 128, queue K = 65536) at DenseCL's dense
// size (R = 32 images x 49 cells = 1568) and 8x that (R = 12544), each kernel variant forced:
// GPU kernel time by timestamps, GFLOP/s and % of the device's measured FMA peak (6 R K D flops:
// logits forward, logits again and P . queue backward), and the loss's peak memory (the pool's
// peak over the op, less what was live before: the loss's temporaries and its outputs).
// Before timing, both variants' loss and dq are compared. Also the dense correspondence at
// ResNet-50's 224 px size (32 images, 2048 channels, 7 x 7 cells), each kernel forced.
// With CUDA, scripts/bench_torch_loss.py times the same loss in PyTorch (logits materialised).
// BENCH_QUICK=1: small sizes (R = 196 and 32, K = 4096). CONTRASTIVE_ROWS, CONTRASTIVE_K and
// CONTRASTIVE_REPS (runs per case, best kept; default 1) override; CONTRASTIVE_SLOW_ROWS lists
// row counts at which only 'gemm' runs (the tiled kernels take minutes there on lavapipe).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { tensor, backward, scope, Rng, type Tensor } from '../engine/index.js';
import { measurePeak } from '../engine/peak/peak.js';
import { profile } from '../engine/profiler.js';
import { queueContrastiveLoss, chooseContrastiveVariant, type ContrastiveVariant } from '../models/ops/contrastive.js';
import {
  denseCorrespondence,
  chooseCorrespondenceVariant,
  type CorrespondenceVariant,
} from '../models/ops/correspondence.js';
import type { BenchContext } from './lib/context.js';
import { resultsDir } from './lib/report.js';
import { writeFileAtomic } from '../train/io.js';

const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const LOSS_VARIANTS: ContrastiveVariant[] = ['tiled', 'gemm'];
const CORR_VARIANTS: CorrespondenceVariant[] = ['tiled', 'direct'];
const MiB = 1024 * 1024;

interface LossRow {
  R: number;
  K: number;
  D: number;
  variant: string;
  kernelMs: number;
  wallMs: number;
  gflops: number;
  percentPeak: number;
  peakBytes: number;
  kernels: Record<string, number>;
}

function unitRows(n: number, d: number, rng: Rng): Float32Array {
  const a = Float32Array.from({ length: n * d }, () => rng.normal());
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += a[r * d + c] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let c = 0; c < d; c++) a[r * d + c] *= inv;
  }
  return a;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
}

export async function run(ctx: BenchContext): Promise<void> {
  const { rt } = ctx;
  const quick = !!process.env.BENCH_QUICK;
  const D = 128;
  const K = Number(process.env.CONTRASTIVE_K ?? (quick ? 4096 : 65536));
  const sizes = (process.env.CONTRASTIVE_ROWS ?? (quick ? '196,32' : '1568,12544')).split(',').map(Number);
  const variantsAt = (R: number): ContrastiveVariant[] =>
    process.env.CONTRASTIVE_SLOW_ROWS?.split(',').map(Number).includes(R) ? ['gemm'] : LOSS_VARIANTS;
  const reps = Number(process.env.CONTRASTIVE_REPS ?? 1);
  const peak = await measurePeak(rt);
  console.log(`  measured peak: ${peak.gflops.toFixed(1)} GFLOP/s (FMA), ${peak.gbps.toFixed(1)} GB/s`);
  const rng = new Rng(7);
  const queue = tensor(unitRows(K, D, rng), [K, D]);
  const rows: LossRow[] = [];
  const notes: string[] = [];

  for (const R of sizes) {
    const qData = unitRows(R, D, rng);
    const pos = tensor(
      Float32Array.from({ length: R }, () => rng.uniform(-0.2, 0.8)),
      [R],
    );
    const q = tensor(qData, [R, D]).requireGrad();
    const step = (variant: ContrastiveVariant): { loss: Tensor; dq: Tensor } => {
      q.grad = null;
      const loss = scope(() => {
        const l = queueContrastiveLoss(q, pos, queue, { tau: 0.2, variant });
        backward(l);
        return l;
      });
      const dq = q.grad!;
      q.grad = null;
      return { loss, dq };
    };
    // Each variant timed; the first run's results are compared, so a fast wrong kernel cannot win.
    const results = new Map<ContrastiveVariant, { loss: number; dq: Float32Array }>();
    for (const variant of variantsAt(R)) {
      let best: LossRow | null = null;
      for (let i = 0; i < reps; i++) {
        await rt.sync();
        const liveBefore = rt.memory().bytesLive;
        rt.pool.resetPeak();
        let out: { loss: Tensor; dq: Tensor } | null = null;
        const p = await profile(rt, () => (out = step(variant)), { groupMs: 0 });
        const peakBytes = rt.memory().peakBytesLive - liveBefore;
        if (i === 0) results.set(variant, { loss: await out!.loss.item(), dq: (await out!.dq.data()) as Float32Array });
        out!.loss.dispose();
        out!.dq.dispose();
        const kernels: Record<string, number> = {};
        for (const r of p.records) kernels[r.kernel] = (kernels[r.kernel] ?? 0) + r.gpuMs;
        const kernelMs = p.records.reduce((s, r) => s + r.gpuMs, 0);
        const gflops = (6 * R * K * D) / (kernelMs * 1e6);
        const row: LossRow = {
          R,
          K,
          D,
          variant,
          kernelMs,
          wallMs: p.wallMs,
          gflops,
          percentPeak: (100 * gflops) / peak.gflops,
          peakBytes,
          kernels,
        };
        if (!best || row.kernelMs < best.kernelMs) best = row;
      }
      rows.push(best!);
      console.log(
        `  R ${R} ${variant}: ${best!.kernelMs.toFixed(1)} ms kernels, ${best!.gflops.toFixed(1)} GFLOP/s (${best!.percentPeak.toFixed(1)}% of peak), peak memory ${(best!.peakBytes / MiB).toFixed(1)} MiB`,
      );
    }
    if (results.size > 1) {
      const [a, b] = [...results.values()];
      const dLoss = Math.abs(a.loss - b.loss) / Math.abs(b.loss);
      const dDq = maxRelDiff(a.dq, b.dq);
      if (dLoss > 1e-4 || dDq > 1e-4)
        throw new Error(`contrastive bench R ${R}: variants disagree (loss ${dLoss}, dq ${dDq} relative)`);
      notes.push(
        `R ${R}: ${[...results.keys()].join(' vs ')}: loss ${a.loss.toFixed(6)} vs ${b.loss.toFixed(6)}, dq max difference ${dDq.toExponential(1)} of its largest entry`,
      );
    }
    q.dispose();
    pos.dispose();
  }
  queue.dispose();

  const corr = await correspondence(ctx, quick);
  const torch = torchLoss(sizes, K, D);
  const chosen = `${chooseContrastiveVariant(rt, D)} loss, ${chooseCorrespondenceVariant(rt)} correspondence`;
  notes.push(`The engine chooses on this device: ${chosen} (models/ops/contrastive.ts, correspondence.ts).`);
  notes.push(torch.note);

  const table = [
    '| R | K | D | variant | kernel ms (fwd+bwd) | GFLOP/s | % of FMA peak | loss peak memory MiB | wall ms |',
    '| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.R} | ${r.K} | ${r.D} | ${r.variant} | ${r.kernelMs.toFixed(2)} | ${r.gflops.toFixed(1)} | ${r.percentPeak.toFixed(2)} | ${(r.peakBytes / MiB).toFixed(2)} | ${r.wallMs.toFixed(0)} |`,
    ),
    ...torch.rows.map(
      (t) =>
        `| ${t.R} | ${t.K} | ${t.D} | PyTorch ${t.device} | ${t.ms.toFixed(2)} | ${((6 * t.R * t.K * t.D) / (t.ms * 1e6)).toFixed(1)} | ${((600 * t.R * t.K * t.D) / (t.ms * 1e6 * peak.gflops)).toFixed(2)} | ${(t.peak_bytes / MiB).toFixed(2)} | |`,
    ),
  ].join('\n');
  const kernelTable = [
    '| R | variant | kernel | ms |',
    '| ---: | --- | --- | ---: |',
    ...rows.flatMap((r) =>
      Object.entries(r.kernels).map(([k, ms]) => `| ${r.R} | ${r.variant} | ${k} | ${ms.toFixed(2)} |`),
    ),
  ].join('\n');
  const corrTable = [
    '| N x C x S2 | variant | kernel ms |',
    '| --- | --- | ---: |',
    ...corr.map((c) => `| ${c.shape} | ${c.variant} | ${c.ms.toFixed(3)} |`),
  ].join('\n');
  const date = new Date().toISOString();
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const text = new TextEncoder();
  writeFileAtomic(
    join(dir, 'contrastive.json'),
    text.encode(
      JSON.stringify(
        {
          suite: 'contrastive',
          adapter: ctx.adapter,
          date,
          peak,
          rows,
          correspondence: corr,
          torch: torch.rows,
          chosen,
        },
        null,
        2,
      ) + '\n',
    ),
  );
  const md = [
    '# Benchmark: contrastive loss',
    '',
    `Adapter: ${ctx.adapter}  `,
    `Date: ${date}, Node ${process.version}, ${cpus().length} CPU cores, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' / ')}  `,
    `Measured peak: ${peak.gflops.toFixed(1)} GFLOP/s (FMA kernel), ${peak.gbps.toFixed(1)} GB/s`,
    '',
    `Loss forward + backward, tau 0.2, unit-norm rows; best of ${reps} run(s) by GPU timestamps (the first run's results compared between variants); flops counted as 6 R K D.`,
    '',
    table,
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    '## Per kernel',
    '',
    kernelTable,
    '',
    '## Dense correspondence',
    '',
    corrTable,
    '',
  ].join('\n');
  writeFileAtomic(join(dir, 'contrastive.md'), text.encode(md));
  console.log(`\n${table}\n\n${corrTable}\n\n${notes.join('\n')}`);
}

/** Each correspondence kernel on one size; the two must give the same indices. */
async function correspondence(
  ctx: BenchContext,
  quick: boolean,
): Promise<{ shape: string; variant: string; ms: number }[]> {
  const { rt } = ctx;
  const [N, C, S2] = quick ? [8, 512, 49] : [32, 2048, 49];
  const rng = new Rng(3);
  const qb = tensor(
    Float32Array.from({ length: N * C * S2 }, () => rng.normal()),
    [N, C, S2],
  );
  const kb = tensor(
    Float32Array.from({ length: N * C * S2 }, () => rng.normal()),
    [N, C, S2],
  );
  const out: { shape: string; variant: string; ms: number }[] = [];
  const indices: number[][] = [];
  for (const variant of CORR_VARIANTS) {
    const ind = denseCorrespondence(qb, kb, variant);
    indices.push(Array.from(await ind.data()));
    ind.dispose();
    const p = await profile(rt, () => denseCorrespondence(qb, kb, variant).dispose(), { groupMs: 0 });
    out.push({ shape: `${N}x${C}x${S2}`, variant, ms: p.records.reduce((s, r) => s + r.gpuMs, 0) });
  }
  if (indices[0].some((v, i) => v !== indices[1][i])) throw new Error('correspondence bench: the kernels disagree');
  qb.dispose();
  kb.dispose();
  return out;
}

interface TorchRow {
  R: number;
  K: number;
  D: number;
  device: string;
  ms: number;
  peak_bytes: number;
}

/** PyTorch CUDA timings of the same loss, when python3 has torch with CUDA. */
function torchLoss(sizes: number[], K: number, D: number): { rows: TorchRow[]; note: string } {
  const r = spawnSync(
    PYTHON,
    ['scripts/bench_torch_loss.py', '--rows', sizes.join(','), '--queue', String(K), '--dim', String(D)],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (r.status !== 0)
    return {
      rows: [],
      note: `PyTorch: not run (${(r.stderr || r.error?.message || 'failed').trim().split('\n').pop()})`,
    };
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TorchRow | { skipped: string });
  const skipped = lines.find((l): l is { skipped: string } => 'skipped' in l);
  if (skipped) return { rows: [], note: `PyTorch: not run (${skipped.skipped})` };
  const rows = lines as TorchRow[];
  return {
    rows,
    note: `PyTorch ${torchVersion()} on ${rows[0]?.device}: scripts/bench_torch_loss.py, logits materialised, fp32 (TF32 off), CUDA events, median of 10 after 3 warm-up; peak memory from torch.cuda.max_memory_allocated over the op.`,
  };
}

function torchVersion(): string {
  return spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout.trim();
}
