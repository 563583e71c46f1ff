// conv2d on ResNet-18 and ResNet-50 layer shapes at batch 8: the forward pass, the input
// gradient and the weight gradient timed separately, our engine against TensorFlow.js's WebGPU
// backend on the same GPUDevice. Sizes: 224x224 inputs (the network's real shapes) and the
// 64x64 demo size. tfjs is channels-last, so it runs the same problems as NHWC tensors with HWIO
// filters (its native layout: tf.conv2d, and its Conv2DBackpropInput / Conv2DBackpropFilter
// kernels). Before timing, every geometry is checked at the demo size: our three results
// against tfjs's (after the layout change), so that a fast wrong kernel cannot win.
// tfjs is slow at 224x224 (its weight gradient runs one invocation per weight, looping over the
// batch and the image), so its 224 cases take a single timed sample.
// Mixed precision ('ours f16', where the adapter has shader-f16): conv2d's f16-operand tiled
// kernels (f32 accumulation) beside our f32 kernels, as the report's ratio column 'ours/ours f16'
// (time of f16 / time of f32: above 1, f32 is faster). Each f16 case includes the cast that
// conv2d's mixed path makes for it: fwd toHalf(x), dx scaledHalf(dy) (done once per backward,
// shared with dw); dw runs on those (x16 saved by the forward, dy16 from dx's cast).
import { noGrad, tensor, Rng, type Tensor } from '../engine/index.js';
import {
  conv2d,
  conv2dInputGrad,
  conv2dWeightGrad,
  conv2dGeometry,
  conv2dPlanFor,
  conv2dMixedKernels,
  type Conv2dOptions,
} from '../engine/ops/conv2d/index.js';
import { toHalf } from '../engine/ops/cast.js';
import { scaledHalf } from '../engine/ops/grad-scale.js';
import { hasSubgroups8 } from '../engine/ops/matmul.js';
import type { BenchContext } from './lib/context.js';
import { engineCase, measureCases, tfjsCase, type Measurement, type TimingOptions } from './lib/timing.js';
import { writeReport } from './lib/report.js';
import type { Tfjs } from './lib/tfjs.js';
import type { Tensor as TfTensor, Tensor4D } from '@tensorflow/tfjs-core';

const BATCH = 8;

export interface Layer {
  net: 'r18' | 'r50';
  name: string;
  C: number;
  O: number;
  /** Input size at 224x224 network input. */
  H: number;
  K: number;
  stride: number;
}

// Distinct conv shapes of torchvision's ResNet-18 and ResNet-50 (v1.5: stride on the 3x3);
// bench/gpu.ts times the same list.
export const LAYERS: Layer[] = [
  { net: 'r18', name: 'conv1 7x7/2 3->64', C: 3, O: 64, H: 224, K: 7, stride: 2 },
  { net: 'r18', name: 'layer1 3x3 64->64', C: 64, O: 64, H: 56, K: 3, stride: 1 },
  { net: 'r18', name: 'layer2.0 3x3/2 64->128', C: 64, O: 128, H: 56, K: 3, stride: 2 },
  { net: 'r18', name: 'layer2 3x3 128->128', C: 128, O: 128, H: 28, K: 3, stride: 1 },
  { net: 'r18', name: 'layer2.ds 1x1/2 64->128', C: 64, O: 128, H: 56, K: 1, stride: 2 },
  { net: 'r18', name: 'layer3.0 3x3/2 128->256', C: 128, O: 256, H: 28, K: 3, stride: 2 },
  { net: 'r18', name: 'layer3 3x3 256->256', C: 256, O: 256, H: 14, K: 3, stride: 1 },
  { net: 'r18', name: 'layer3.ds 1x1/2 128->256', C: 128, O: 256, H: 28, K: 1, stride: 2 },
  { net: 'r18', name: 'layer4.0 3x3/2 256->512', C: 256, O: 512, H: 14, K: 3, stride: 2 },
  { net: 'r18', name: 'layer4 3x3 512->512', C: 512, O: 512, H: 7, K: 3, stride: 1 },
  { net: 'r18', name: 'layer4.ds 1x1/2 256->512', C: 256, O: 512, H: 14, K: 1, stride: 2 },
  { net: 'r50', name: 'layer1 1x1 64->64', C: 64, O: 64, H: 56, K: 1, stride: 1 },
  { net: 'r50', name: 'layer1 1x1 64->256', C: 64, O: 256, H: 56, K: 1, stride: 1 },
  { net: 'r50', name: 'layer1 1x1 256->64', C: 256, O: 64, H: 56, K: 1, stride: 1 },
  { net: 'r50', name: 'layer2.0 1x1 256->128', C: 256, O: 128, H: 56, K: 1, stride: 1 },
  { net: 'r50', name: 'layer2.0 3x3/2 128->128', C: 128, O: 128, H: 56, K: 3, stride: 2 },
  { net: 'r50', name: 'layer2 1x1 128->512', C: 128, O: 512, H: 28, K: 1, stride: 1 },
  { net: 'r50', name: 'layer2 1x1 512->128', C: 512, O: 128, H: 28, K: 1, stride: 1 },
  { net: 'r50', name: 'layer2.ds 1x1/2 256->512', C: 256, O: 512, H: 56, K: 1, stride: 2 },
  { net: 'r50', name: 'layer3.0 3x3/2 256->256', C: 256, O: 256, H: 28, K: 3, stride: 2 },
  { net: 'r50', name: 'layer3 1x1 256->1024', C: 256, O: 1024, H: 14, K: 1, stride: 1 },
  { net: 'r50', name: 'layer3 1x1 1024->256', C: 1024, O: 256, H: 14, K: 1, stride: 1 },
  { net: 'r50', name: 'layer4.0 3x3/2 512->512', C: 512, O: 512, H: 14, K: 3, stride: 2 },
  { net: 'r50', name: 'layer4 1x1 512->2048', C: 512, O: 2048, H: 7, K: 1, stride: 1 },
  { net: 'r50', name: 'layer4 1x1 2048->512', C: 2048, O: 512, H: 7, K: 1, stride: 1 },
];

// BENCH_CONV_LAYERS=<regex> keeps only the layers whose "net name" matches (e.g. 'r18 layer1').
const only = process.env.BENCH_CONV_LAYERS ? new RegExp(process.env.BENCH_CONV_LAYERS) : null;
const SELECTED = LAYERS.filter((l) => !only || only.test(`${l.net} ${l.name}`));

export type Dir = 'fwd' | 'dx' | 'dw';
export const DIRS: Dir[] = ['fwd', 'dx', 'dw'];

/** The layer at the 64x64 demo size: every spatial size scaled by 64/224. */
const demoSize = (l: Layer): number => Math.max(1, Math.round((l.H * 64) / 224));

export interface Problem {
  label: string;
  xs: number[];
  ws: number[];
  opts: Conv2dOptions;
  flops: number;
  bytes: Record<Dir, number>;
}

/** Layer `l` on `H`x`H` inputs (`size` names the network input size in the label). */
export function problem(l: Layer, H: number, size: string, batch = BATCH): Problem {
  const opts: Conv2dOptions = { stride: l.stride, padding: (l.K - 1) / 2 };
  const xs = [batch, l.C, H, H];
  const ws = [l.O, l.C, l.K, l.K];
  const g = conv2dGeometry(xs, ws, opts);
  const x = g.N * g.C * g.H * g.W;
  const w = g.O * g.C * g.KH * g.KW;
  const y = g.N * g.O * g.OH * g.OW;
  return {
    label: `${l.net} ${l.name} @${size}`,
    xs,
    ws,
    opts,
    flops: 2 * y * g.C * g.KH * g.KW,
    bytes: { fwd: 4 * (x + w + y), dx: 4 * (y + w + x), dw: 4 * (x + y + w) },
  };
}

/** NHWC data of an NCHW array (also OIHW -> HWIO with the roles [O, I, H, W] -> [H, W, I, O]). */
function toNhwc(v: ArrayLike<number>, [N, C, H, W]: number[]): Float32Array {
  const out = new Float32Array(v.length);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < H * W; i++) out[(n * H * W + i) * C + c] = v[(n * C + c) * H * W + i];
  return out;
}

function toHwio(v: ArrayLike<number>, [O, I, KH, KW]: number[]): Float32Array {
  const out = new Float32Array(v.length);
  for (let o = 0; o < O; o++)
    for (let i = 0; i < I; i++)
      for (let k = 0; k < KH * KW; k++) out[(k * I + i) * O + o] = v[(o * I + i) * KH * KW + k];
  return out;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (scale || 1));
  return worst;
}

/** Our tensors and tfjs's for one problem, with one op per direction for each engine. */
export function setup(tfjs: Tfjs, p: Problem, seed: number) {
  const { tf } = tfjs;
  const g = conv2dGeometry(p.xs, p.ws, p.opts);
  const ys = [g.N, g.O, g.OH, g.OW];
  const rng = new Rng(seed);
  const rand = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => rng.uniform(-s, s));
  const xd = rand(p.xs.reduce((a, b) => a * b));
  const wd = rand(
    p.ws.reduce((a, b) => a * b),
    1 / Math.sqrt(g.C * g.KH * g.KW),
  );
  const dyd = rand(ys.reduce((a, b) => a * b));
  const x = tensor(xd, p.xs);
  const w = tensor(wd, p.ws);
  const dy = tensor(dyd, ys);
  const tx = tf.tensor4d(toNhwc(xd, p.xs), [g.N, g.H, g.W, g.C]);
  const tw = tf.tensor4d(toHwio(wd, p.ws), [g.KH, g.KW, g.C, g.O]);
  const tdy = tf.tensor4d(toNhwc(dyd, ys), [g.N, g.OH, g.OW, g.O]);
  const strides: [number, number] = [g.SH, g.SW];
  const pad = g.PH;
  const ours: Record<Dir, () => Tensor> = {
    fwd: () => noGrad(() => conv2d(x, w, null, p.opts)),
    dx: () => conv2dInputGrad(dy, w, p.xs, p.opts),
    dw: () => conv2dWeightGrad(x, dy, p.ws, p.opts),
  };
  const theirs: Record<Dir, () => TfTensor> = {
    fwd: () => tf.conv2d(tx, tw, strides, pad),
    dx: () =>
      tf.engine().runKernel(
        'Conv2DBackpropInput',
        { dy: tdy, filter: tw },
        {
          strides,
          pad,
          dataFormat: 'NHWC',
          inputShape: [g.N, g.H, g.W, g.C],
        },
      ) as Tensor4D,
    dw: () =>
      tf.engine().runKernel(
        'Conv2DBackpropFilter',
        { x: tx, dy: tdy },
        {
          strides,
          pad,
          dataFormat: 'NHWC',
          filterShape: [g.KH, g.KW, g.C, g.O],
        },
      ) as Tensor4D,
  };
  const mixed = x.rt.profile.features.shaderF16 ? mixedOps(p, x, w, dy) : null;
  const layouts: Record<Dir, (v: ArrayLike<number>) => Float32Array> = {
    fwd: (v) => toNhwc(v, ys),
    dx: (v) => toNhwc(v, p.xs),
    dw: (v) => toHwio(v, p.ws),
  };
  const dispose = (): void => {
    for (const t of [x, w, dy]) t.dispose();
    for (const t of [tx, tw, tdy]) t.dispose();
    mixed?.dispose();
  };
  return { ours, theirs, mixed: mixed?.ops ?? null, layouts, dispose };
}

/** The mixed-precision directions (see the header for what each includes). */
function mixedOps(p: Problem, x: Tensor, w: Tensor, dy: Tensor) {
  const k = conv2dMixedKernels(conv2dPlanFor(x.rt, p.xs, p.ws, p.opts, false, true), x.rt);
  const x16 = toHalf(x);
  const dy16 = scaledHalf(dy);
  const ops: Record<Dir, () => Tensor> = {
    fwd: () => {
      const h = toHalf(x);
      const y = k.forward(h, w, null);
      h.dispose();
      return y;
    },
    dx: () => {
      const s = scaledHalf(dy);
      const dx = k.inputGrad(s, w);
      s.half.dispose();
      s.amax.dispose();
      return dx;
    },
    dw: () => k.weightGrad(x16, dy16)!,
  };
  const dispose = (): void => {
    for (const t of [x16, dy16.half, dy16.amax]) t.dispose();
  };
  return { ops, dispose };
}

/** Ours against tfjs in one direction: the largest difference, relative to tfjs's largest value. */
export async function disagreement(s: ReturnType<typeof setup>, d: Dir): Promise<number> {
  const mine = s.ours[d]();
  const ref = s.theirs[d]();
  const diff = maxRelDiff(s.layouts[d](await mine.data()), (await ref.data()) as Float32Array);
  mine.dispose();
  ref.dispose();
  return diff;
}

/** Our f16 result against our f32 one: the largest difference relative to the largest f32 value. */
async function mixedDisagreement(f32: () => Tensor, f16: () => Tensor): Promise<number> {
  const [a, b] = [f32(), f16()];
  const diff = maxRelDiff(await b.data(), await a.data());
  a.dispose();
  b.dispose();
  return diff;
}

/** Which of our kernels a problem takes, for the notes. */
function variant(ctx: BenchContext, p: Problem, mixed = false): string {
  const plan = conv2dPlanFor(ctx.rt, p.xs, p.ws, p.opts, false, mixed);
  if (plan.path === 'tiled') {
    const t = plan.tiled!;
    return `tiled fwd ${t.tile}, dx ${t.inputGradTile} in ${t.inputGrad.filter((d) => d).length} class(es), dw ${t.weightGradTile} in ${t.chunks} chunk(s)`;
  }
  if (plan.path === 'gemm') return `gemm (matmul.ts)${plan.weightGradFolded ? ', dw batch-folded GEMM' : ''}`;
  if (plan.path === 'fold') return 'batch-folded GEMMs (im2col + matmul.ts)';
  const f = plan.forward!;
  const wg = plan.weightGrad;
  const dw = wg ? `dw TMW=${wg.TMW} TN=${wg.TN} in ${wg.chunks} chunk(s)` : 'dw batch-folded GEMM';
  return `${f.sg8 ? 'sg8' : 'lane'} core TM=${f.TM} TN=${f.TN}, ${plan.inputGradStride2 ? 'dx fused stride-2' : `dx ${plan.inputGrad.filter((d) => d).length} class(es)`}, ${dw}`;
}

export async function run(ctx: BenchContext): Promise<void> {
  const { rt } = ctx;
  const tfjs = await ctx.tfjs();
  const notes: string[] = [];

  // Correctness first, at the demo size (every geometry of the table).
  let worst = 0;
  let worstHalf = 0;
  for (const [i, l] of SELECTED.entries()) {
    const p = problem(l, demoSize(l), '64');
    const s = setup(tfjs, p, 100 + i);
    for (const d of DIRS) {
      const diff = await disagreement(s, d);
      if (diff > 1e-3)
        throw new Error(
          `conv bench: ${p.label} ${d}: ours and tfjs disagree (max difference ${diff} of the largest value)`,
        );
      worst = Math.max(worst, diff);
      if (s.mixed) {
        const half = await mixedDisagreement(s.ours[d], s.mixed[d]);
        // f16 operands: about 2^-11 relative per operand, so 1e-2 of the largest value is far off.
        if (half > 1e-2)
          throw new Error(`conv bench: ${p.label} ${d}: f16 and f32 kernels disagree (max difference ${half})`);
        worstHalf = Math.max(worstHalf, half);
      }
    }
    s.dispose();
  }
  notes.push(
    `Checked before timing at the 64x64 size, all ${SELECTED.length} geometries x 3 directions: largest difference ours vs tfjs ${worst.toExponential(1)} of the largest value` +
      (rt.profile.features.shaderF16
        ? `; ours f16 vs ours f32 ${worstHalf.toExponential(1)}.`
        : '; no shader-f16 on this adapter, so no f16 column.'),
  );

  const measurements: Measurement[] = [];
  const quick = ctx.timing.minSamples < 5;
  // Few samples: these ops take 0.1 to several seconds each and the whole suite has to fit in
  // minutes. tfjs at 224x224 (0.3 s to several seconds per op) gets one timed sample.
  const timing: TimingOptions = { targetBatchMs: 150, maxReps: 16, minSamples: quick ? 1 : 3, maxTime: quick ? 0 : 1 };
  const slow: TimingOptions = { ...timing, minSamples: 1, maxTime: 0 };
  const sizes: [string, (l: Layer) => number][] = [
    ['224', (l) => l.H],
    ['64', demoSize],
  ];
  for (const [size, H] of sizes) {
    for (const [i, l] of SELECTED.entries()) {
      const p = problem(l, H(l), size);
      const s = setup(tfjs, p, 200 + i);
      for (const d of DIRS) {
        const work = { label: `${p.label} ${d}`, flops: p.flops, bytes: p.bytes[d] };
        const opts = size === '224' ? slow : timing;
        const cases = [engineCase('ours', rt, () => s.ours[d]().dispose())];
        if (s.mixed) {
          const op = s.mixed[d];
          cases.push(engineCase('ours f16', rt, () => op().dispose()));
        }
        const ours = await measureCases('conv', work, cases, timing);
        const theirs = await measureCases('conv', work, [tfjsCase('tfjs', tfjs, s.theirs[d])], opts);
        measurements.push(...ours, ...theirs);
      }
      if (size === '224')
        notes.push(`${p.label}: ${variant(ctx, p)}${s.mixed ? `; f16: ${variant(ctx, p, true)}` : ''}`);
      s.dispose();
    }
  }

  // Geometric means per network, size and direction: of ours/tfjs speed, and of f16/f32 time.
  const geomean = (other: string, net: string, size: string, d: Dir): string => {
    const rs = measurements
      .filter((m) => m.name === 'ours' && m.workload.startsWith(`${net} `) && m.workload.endsWith(`@${size} ${d}`))
      .map((m) => {
        const t = measurements.find((x) => x.name === other && x.workload === m.workload);
        return t ? t.msPerOp / m.msPerOp : NaN;
      })
      .filter((r) => Number.isFinite(r));
    return rs.length ? `${Math.exp(rs.reduce((a, r) => a + Math.log(r), 0) / rs.length).toFixed(2)}x` : '-';
  };
  const table = (other: string): string[] => {
    const rows = ['| set | fwd | dx | dw |', '|---|---|---|---|'];
    for (const [size] of sizes)
      for (const net of ['r18', 'r50'])
        rows.push(`| ${net} @${size} | ${DIRS.map((d) => geomean(other, net, size, d)).join(' | ')} |`);
    return rows;
  };
  const rows = table('tfjs');
  const halfRows = table('ours f16');
  notes.push(
    `Batch ${BATCH}, padding (K-1)/2. ours: engine conv2d (forward), conv2dInputGrad and conv2dWeightGrad (the kernels conv2d's backward runs)` +
      `${hasSubgroups8(rt) ? ', with 8-wide subgroups' : ', without subgroups'}; tfjs: tf.conv2d and its Conv2DBackpropInput / Conv2DBackpropFilter kernels, NHWC.`,
    "ours f16: mixed precision (f16 operands, f32 accumulation, the tiled kernels on every adapter, where ours is the device profile's f32 family: classic on CPU drivers), with the cast conv2d makes for it (fwd: toHalf(x); dx: scaledHalf(dy), shared with dw in training; dw: none).",
    'Each sample is a batch of ops recorded back to back and awaited once; ms/op = median batch time / ops per batch. GFLOP/s counts 2*N*O*OH*OW*C*KH*KW for every direction.',
  );
  const out = writeReport({
    suite: 'conv',
    adapter: ctx.adapter,
    ours: 'ours',
    measurements,
    notes,
    sections: [
      { title: 'Geometric mean speed-up, ours/tfjs', markdown: rows.join('\n') },
      {
        title: 'Geometric mean time of ours f16 / ours f32 (below 1: f16 operands pay)',
        markdown: halfRows.join('\n'),
      },
    ],
  });
  console.log(out.table);
  console.log(rows.join('\n'));
  console.log(halfRows.join('\n'));
  console.log(`[bench] wrote ${out.json} and ${out.markdown}`);
}
