// Square f32 matmul, C = A * B, at 256, 512 and 1024: our engine's matmul, TensorFlow.js's
// WebGPU matMul on the same GPUDevice, and a naive one-output-per-invocation WGSL kernel; where
// the device has shader-f16, also ours on the operands rounded to f16 ('ours f16': f16 x f16,
// accumulated in f32, the GEMMs of precision 'mixed'), and where the device has subgroup matrices
// and that kernel passed its check here, 'ours sgmat' (the same on the matrix units).
// Before timing, the three results are compared so a fast wrong kernel cannot win.
// A second report (matmul_variants) times each of our kernels on the same sizes: the
// measurements behind the order in which gemm picks them.
import naiveSrc from './naive_matmul.wgsl';
import { matmul, noGrad, tensor, toHalf, Rng, type Runtime, type Tensor } from '../engine/index.js';
import {
  gemm,
  chooseGemmVariant,
  gemmShapeClass,
  gemmVariantProblem,
  hasSubgroups8,
  subgroupMatrixReady,
  TILED_VARIANTS,
  type GemmArgs,
  type GemmVariant,
} from '../engine/ops/matmul.js';
import type { BenchContext } from './lib/context.js';
import { engineCase, measureCases, tfjsCase, type Measurement } from './lib/timing.js';
import { writeReport } from './lib/report.js';
import type { Tfjs } from './lib/tfjs.js';

const SIZES = [256, 512, 1024];

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

function square(n: number): GemmArgs {
  return { batch: 1, M: n, N: n, K: n, transA: false, transB: false, strideA: 0, strideB: 0 };
}

export async function run(ctx: BenchContext): Promise<void> {
  await compare(ctx);
  await variants(ctx, await tuning(ctx));
}

/** Ours vs tfjs vs naive. */
async function compare(ctx: BenchContext): Promise<void> {
  const { rt } = ctx;
  const tfjs = await ctx.tfjs();
  const naive = rt.kernel('bench_naive_matmul', naiveSrc);
  const measurements: Measurement[] = [];
  const notes: string[] = [];
  for (const n of SIZES) {
    const pair = await squareMatmul(rt, tfjs, n);
    const c = tensor(new Float32Array(n * n), [n, n]);
    const recordNaive = (): void =>
      rt.dispatch(naive, {
        params: { M: n, N: n, K: n },
        buffers: [pair.a.buffer('bench'), pair.b.buffer('bench'), c.buffer('bench')],
        workgroups: [Math.ceil(n / 8), Math.ceil(n / 8), 1],
        op: 'bench.naive_matmul',
      });
    recordNaive();
    const dn = maxRelDiff(pair.result, await c.data());
    if (dn > 1e-3)
      throw new Error(`matmul bench ${n}: ours and the naive kernel disagree (max relative difference ${dn})`);
    notes.push(
      `${n}: max relative difference ours vs tfjs ${pair.diff.toExponential(1)}, ours vs naive ${dn.toExponential(1)}`,
    );
    const work = { label: `${n}x${n}x${n}`, flops: 2 * n * n * n, bytes: 3 * 4 * n * n };
    measurements.push(
      ...(await measureCases('matmul', work, [...pair.cases, engineCase('naive', rt, recordNaive)], ctx.timing)),
    );
    c.dispose();
    pair.dispose();
  }
  notes.push(
    `ours: engine matmul, which chose the ${SIZES.map((n) => `${chooseGemmVariant(rt, square(n))} kernel at ${n}`).join(', ')}` +
      (hasSubgroups8(rt) ? '.' : ' (no 8-wide subgroups on this device, so no sg8 kernel).'),
    halfNote(rt),
    'tfjs: @tensorflow/tfjs-backend-webgpu matMul on the same GPUDevice' +
      (tfjs.sharedDevice ? '' : ' (NOT shared: own device on the same adapter)') +
      '; naive: bench/naive_matmul.wgsl, one output per invocation.',
    'Each sample is a batch of ops recorded back to back and awaited once (GPU work finished); ms/op = median batch time / ops per batch.',
  );
  const out = writeReport({ suite: 'matmul', adapter: ctx.adapter, ours: 'ours', measurements, notes });
  console.log(out.table);
  console.log(`[bench] wrote ${out.json} and ${out.markdown}`);
}

/**
 * An n x n x n product of random operands for our engine and tfjs (the same data), with one
 * timing case each ('ours', 'tfjs'); the two results are checked to agree before any timing.
 * bench/gpu.ts times the same pairs at GPU sizes.
 */
export async function squareMatmul(rt: Runtime, tfjs: Tfjs, n: number) {
  const { tf } = tfjs;
  const rng = new Rng(n);
  const dataA = Float32Array.from({ length: n * n }, () => rng.uniform(-1, 1));
  const dataB = Float32Array.from({ length: n * n }, () => rng.uniform(-1, 1));
  const a = tensor(dataA, [n, n]);
  const b = tensor(dataB, [n, n]);
  const ta = tf.tensor2d(dataA, [n, n]);
  const tb = tf.tensor2d(dataB, [n, n]);
  const ours = noGrad(() => matmul(a, b));
  const theirs = tf.matMul(ta, tb);
  const [result, t] = [await ours.data(), (await theirs.data()) as Float32Array];
  ours.dispose();
  theirs.dispose();
  const diff = maxRelDiff(result, t);
  if (diff > 1e-3) throw new Error(`matmul ${n}: ours and tfjs disagree (max relative difference ${diff})`);
  const half = rt.profile.features.shaderF16 ? await halfOperands(a, b, result, n) : null;
  return {
    a,
    b,
    /** Our product (row-major). */
    result,
    /** Max relative difference ours vs tfjs. */
    diff,
    cases: [
      engineCase('ours', rt, () => noGrad(() => matmul(a, b)).dispose()),
      tfjsCase('tfjs', tfjs, () => tf.matMul(ta, tb)),
      ...(half ? [engineCase('ours f16', rt, () => noGrad(() => matmul(half.a, half.b)).dispose())] : []),
      ...(half?.sgmat
        ? [engineCase('ours sgmat', rt, () => gemm(half.a, half.b, half.sgmat!, 'bench.matmul').dispose())]
        : []),
    ],
    dispose(): void {
      a.dispose();
      b.dispose();
      half?.a.dispose();
      half?.b.dispose();
      ta.dispose();
      tb.dispose();
    },
  };
}

/** What the f16 columns are here, and why 'ours sgmat' is missing where it is. */
function halfNote(rt: Runtime): string {
  if (!rt.profile.features.shaderF16) return 'ours f16: missing, the device has no shader-f16.';
  const g: GemmArgs = { ...square(SIZES[0]), dtype: 'f16' };
  const sgmat = gemmVariantProblem(rt, g, 'sgmat');
  return (
    `ours f16: the same products on f16-rounded operands (f32 accumulation), the ${chooseGemmVariant(rt, g)} kernel at ${SIZES[0]}; ` +
    (sgmat
      ? `no 'ours sgmat' column: ${sgmat}.`
      : "'ours sgmat': the subgroup-matrix kernel, which passed its check here.")
  );
}

/**
 * The operands rounded to f16, after checking their products against the f32 one: rounding the
 * operands moves an element of C by about 2^-12 sqrt(K) (the sum of K errors of products of
 * size 1/3), its largest of n^2 by up to 5 times that, inside 2^-10 sqrt(K); a broken kernel's
 * errors are of C's own size (~sqrt(K) / 3).
 */
async function halfOperands(a: Tensor, b: Tensor, f32Result: ArrayLike<number>, n: number) {
  const rt = a.rt;
  const sgmat: GemmArgs = { ...square(n), dtype: 'f16', variant: 'sgmat' };
  const half = {
    a: toHalf(a),
    b: toHalf(b),
    /** The subgroup-matrix kernel's arguments where it passed its check on this device. */
    sgmat: (await subgroupMatrixReady(rt, sgmat)) ? sgmat : null,
  };
  const products = [
    ['ours f16', () => matmul(half.a, half.b)],
    ...(half.sgmat ? [['ours sgmat', () => gemm(half.a, half.b, sgmat, 'bench.matmul')] as const] : []),
  ] as const;
  for (const [name, product] of products) {
    const c = noGrad(product);
    const diff = maxRelDiff(await c.data(), f32Result);
    c.dispose();
    if (diff > 2 ** -10 * Math.sqrt(n))
      throw new Error(`matmul ${n}: ${name} and ours f32 disagree (max relative difference ${diff})`);
  }
  return half;
}

/** Autotuning the same products cold (an empty in-memory cache), then warm: what it costs, what it picks. */
async function tuning(ctx: BenchContext): Promise<string[]> {
  const { rt } = ctx;
  const saved = rt.tuner.mode;
  const decisions: Record<string, { name: string }> = {};
  rt.tuner.configure({ mode: 'on', store: { load: () => ({}), save: (_a, k, d) => void (decisions[k] = d) } });
  const lines: string[] = [];
  try {
    for (const warm of [false, true]) {
      const before = { ...rt.tuner.stats };
      const t0 = performance.now();
      for (const n of SIZES) {
        const a = tensor(new Float32Array(n * n), [n, n]);
        noGrad(() => matmul(a, a)).dispose();
        a.dispose();
      }
      await rt.tuner.settled();
      await rt.sync();
      const ms = performance.now() - t0;
      const timed = rt.tuner.stats.classesTuned - before.classesTuned;
      const spent = rt.tuner.stats.tuningMs - before.tuningMs;
      lines.push(
        `Tuning ${warm ? 'warm' : 'cold'} (DENSECL_TUNE=on): ${timed} classes timed, their timings spanning ${spent.toFixed(0)} ms summed over classes (they overlap; ${ms.toFixed(0)} ms wall clock with the products themselves).`,
      );
    }
    lines.push(
      `Tuned choices: ${SIZES.map((n) => `${n}: ${decisions[gemmShapeClass(square(n))]?.name ?? 'none'}`).join(', ')}.`,
    );
  } finally {
    rt.tuner.mode = saved;
  }
  for (const l of lines) console.log(`[bench] ${l}`);
  return lines;
}

/** Each of our kernels that can run on this device, on the same products. */
async function variants(ctx: BenchContext, tuningNotes: string[]): Promise<void> {
  const { rt } = ctx;
  const measurements: Measurement[] = [];
  for (const n of SIZES) {
    const g = square(n);
    const rng = new Rng(n);
    const a = tensor(
      Float32Array.from({ length: n * n }, () => rng.uniform(-1, 1)),
      [n, n],
    );
    const b = tensor(
      Float32Array.from({ length: n * n }, () => rng.uniform(-1, 1)),
      [n, n],
    );
    const cases = (['sg8', 'vec4', 'scalar', ...TILED_VARIANTS] as GemmVariant[])
      .filter((v) => !gemmVariantProblem(rt, g, v))
      .map((v) => engineCase(v, rt, () => gemm(a, b, { ...g, variant: v }, 'bench.matmul').dispose()));
    measurements.push(
      ...(await measureCases(
        'matmul variants',
        { label: `${n}x${n}x${n}`, flops: 2 * n * n * n, bytes: 3 * 4 * n * n },
        cases,
        ctx.timing,
      )),
    );
    a.dispose();
    b.dispose();
  }
  const best = measurements.some((m) => m.name === 'sg8') ? 'sg8' : 'vec4';
  const notes = [
    'Our matmul kernels (engine/ops/matmul.ts) forced one at a time on square row-major products.',
    'sg8: shaders/matmul/sg8.wgsl (8-wide subgroup broadcast); vec4: shaders/matmul/vec4.wgsl; scalar: shaders/matmul/matmul.wgsl.',
    `t<rows>x<cols>: shaders/matmul/tiled.wgsl, the workgroup-memory tiled kernel for GPUs, by its block of C (t128x128k16: K slices of 16 in 32 KiB); the profile's default on this device: ${rt.profile.kernels.gemm === 'lanes' ? 'the per-lane kernels' : 'tiled'}.`,
    hasSubgroups8(rt) ? '' : 'sg8 is missing: the device has no 8-wide subgroups.',
    ...tuningNotes,
  ].filter((x) => x);
  const out = writeReport({ suite: 'matmul_variants', adapter: ctx.adapter, ours: best, measurements, notes });
  console.log(out.table);
  console.log(`[bench] wrote ${out.json} and ${out.markdown}`);
}
