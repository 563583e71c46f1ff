// 2-D convolution (PyTorch's conv2d without groups): x [N, C, H, W], weight [O, C, KH, KW],
// optional bias [O] -> [N, O, OH, OW], with gradients for all three.
//
// Layout: NCHW everywhere, inside too. On lavapipe an invocation is one SIMD lane and every
// storage-buffer load is done one lane at a time (Mesa 25 treats no address inside a loop as
// uniform), so loads per FMA decide the speed, not memory layout or FLOPs. Each invocation owns
// a register tile of output channels x one row segment of output columns; its per-lane loads
// are one window of the source row per (channel, kernel row), shared by all kernel columns, and
// vec4s of a re-laid weight (shared across the subgroup by broadcast where 8-wide subgroups
// exist). NCHW keeps that row window contiguous; NHWC would make the channel loads vec4s but
// the window no shorter, and would cost a transposition of every activation in and out (the
// activations are the large tensors) while ResNet code stays in PyTorch's layout. Only the
// weight, which is small, is re-laid out per call ([C, KH, KW, O] or [O, KH, KW, C], channel
// axis zero-padded to the tile) so its loads are aligned vec4s.
//
// Kernels and variants (conv2dPlan picks them by shape and device):
// - forward: implicit GEMM on shaders/conv2d/gemm.wgsl (M = O, N = N*OH*OW, K = C*KH*KW, nothing like
//   im2col stored); the tile and the tap columns' window layout are compile-time, tap rows and
//   sizes are uniforms, so a few pipelines serve a whole network.
// - input gradient: the same core over dy with the weight re-laid as [O, KH, KW, C], one
//   dispatch per output residue class modulo the stride with only the taps that reach it;
//   3x3 stride 2 padding 1 with 8-wide subgroups: all four classes in one fused pass
//   (dgrad_s2.ts).
// - weight gradient: shaders/conv2d/wgrad.wgsl, K = N*OH*OW split into fixed chunks of output rows, the
//   partials summed by the reduction kernel in a fixed order (deterministic, no atomics); that
//   reduction adds the sum straight into the weight's .grad when it is an accumulating leaf, and
//   for a .grad in a gradient store it is one dispatch per store when the backward pass ends
//   (grad-partials.ts).
// - bias gradient: sums over (OH, OW) then N with the reduction kernel (the same way into .grad).
// - 8-wide subgroups (lavapipe on AVX2): shaders/conv2d/gemm_sg8.wgsl and shaders/conv2d/wgrad_sg8.wgsl share
//   the operand all lanes need (weight, dy) by broadcast and take wider channel tiles.
// - 1x1, no padding, any stride, any map size: per-image GEMMs through matmul.ts for all three,
//   on packed pixel planes where strided or where the pixel count is no multiple of 4
//   (pointwise.ts).
// - the 7x7 RGB stem (and any kernel up to 7 wide): the core with 7 hand-unrolled tap columns
//   over a stride-2 window (21 loads serve 8 outputs x 49 taps of a channel row).
// - bounds checks are compiled out when the shape divides the tile, and source range checks
//   when no tap can leave the source (no padding); strided 1x1 kernels load only the columns
//   they use.
// All of the above is the 'classic' family, designed for lavapipe. GPUs (devices without 8-wide
// subgroups) take the 'tiled' family instead (tiled.ts): workgroup-memory tiles and
// register tiles for all three products and every kernel size up to 7x7, 1x1 included.
// Mixed precision (rt.precision 'mixed' when conv2d runs, engine/autocast.ts): the tiled family
// on every device, with f16 operands and f32 accumulation (tiled.ts); see conv2dMixed below.
import gemmSrc from '../../../shaders/conv2d/gemm.wgsl';
import gemmSg8Src from '../../../shaders/conv2d/gemm_sg8.wgsl';
import wgradSrc from '../../../shaders/conv2d/wgrad.wgsl';
import wgradSg8Src from '../../../shaders/conv2d/wgrad_sg8.wgsl';
import { type Tensor, formatShape } from '../../tensor.js';
import { record, leafGradTarget } from '../../autograd.js';
import type { Runtime } from '../../runtime.js';
import { empty, requireF32, sameRuntime } from '../alloc.js';
import { hasSubgroups8 } from '../matmul.js';
import { inputGradStride2, STRIDE2_TM } from './dgrad_s2.js';
import { forwardPointwise, inputGradPointwise, weightGradPointwise, reshapeOwned, sumPartials } from './pointwise.js';
import { forwardFolded, inputGradFolded, weightGradFolded } from './fold.js';
import { conv2dPlan, type ConvFamily, type ConvPlan, type CoreDispatch } from './plan.js';
import type { Conv2dOptions, ConvGeometry } from './geometry.js';
import { forwardTiled, inputGradTiled, weightGradTiled, type TiledPlan } from './tiled.js';
import { tunedTiledPlan, type ConvDirection, type ConvOperands } from './tune.js';
import { toHalf } from '../cast.js';
import { scaledHalf, type ScaledHalf } from '../grad-scale.js';
import { relayoutWeight } from './relayout.js';
import { partialsFor } from './grad-partials.js';
import { sum, sumFirstAxisInto } from '../reduce.js';
import { reshape } from '../shape.js';
import { fillTensor } from '../pointwise.js';

export { conv2dGeometry, type Conv2dOptions, type ConvGeometry } from './geometry.js';
export { conv2dPlan, type ConvFamily, type ConvPlan, type CoreDispatch, type WgradPlan } from './plan.js';
export { TILED_TILES, type TiledTileName } from './tiles.js';
export type { TiledPlan } from './tiled.js';
export { convShapeClass, convTileCandidates, type ConvDirection, type ConvOperands } from './tune.js';

const OP = 'conv2d';

// The device profile's settings decide (rt.profile.kernels; tests and benchmarks change them
// with overrideKernels): the family (conv: classic on CPU drivers such as lavapipe, for which it
// was tuned, tiled on GPUs), the classic family's subgroup kernels (convSubgroups) and folding
// threshold (convFoldMinOut), and one forced tile of the tiled family (convTile). With the tiled
// family and no tile forced, rt.tuner may choose the tile per direction (tune.ts).
const useSg8 = (rt: Runtime): boolean => rt.profile.kernels.convSubgroups && hasSubgroups8(rt);

// Mixed precision takes the tiled family whatever the profile says (the classic kernels have no
// f16 variants); a forced tile (convTile) applies to it too.
function family(rt: Runtime, mixed = false): ConvFamily {
  const k = rt.profile.kernels;
  return k.conv === 'tiled' || mixed
    ? { family: 'tiled', tile: k.convTile }
    : { family: 'classic', foldMinOut: k.convFoldMinOut };
}
/** A tiled plan's tiles for one direction: forced, tuned or the default rule's. */
function tiledFor(rt: Runtime, plan: ConvPlan, dir: ConvDirection, operands: ConvOperands = 'f32'): TiledPlan {
  return plan.tiled!.forced ? plan.tiled! : tunedTiledPlan(rt, plan.geometry, plan.tiled!, dir, operands);
}
/** The plan conv2d would use on this runtime for these shapes, before tuning (benchmarks name their variants with it). */
export function conv2dPlanFor(
  rt: Runtime,
  xShape: readonly number[],
  wShape: readonly number[],
  opts: Conv2dOptions = {},
  hasBias = false,
  mixed = false,
): ConvPlan {
  return conv2dPlan(xShape, wShape, opts, hasBias, useSg8(rt), family(rt, mixed));
}

// ---------------------------------------------------------------------------------------------
// Dispatch helpers.

/** The weight as A[cin, kh, kw, m] with m padded to mp (trans: cin = o, m = c). */
const relayout = (w: Tensor, g: ConvGeometry, trans: boolean, mp: number, op: string): Tensor =>
  relayoutWeight(w, g, trans, { mp, cinp: 0 }, op);

/** [x, y, z] workgroups with y folded into z beyond the 65535 limit (the shaders rebuild y + z*ny). */
function foldGrid(x: number, y: number): [number, number, number] {
  const z = Math.ceil(y / 65535);
  return [x, Math.ceil(y / z), z];
}

/** Runs the implicit-GEMM core: writes Y[n, m, ...] for one forward pass or one gradient class. */
function runCore(
  rt: Runtime,
  d: CoreDispatch,
  g: ConvGeometry,
  src: Tensor,
  a: Tensor,
  bias: Tensor | null,
  y: Tensor,
  sizes: { CIN: number; SH: number; SW: number; M: number; OH: number; OW: number },
  op: string,
): void {
  const TQ = Math.ceil(d.NQ / d.TN);
  const G = g.N * d.NR * TQ;
  const MP = Math.ceil(sizes.M / d.TM) * d.TM;
  rt.dispatch(
    d.sg8 ? rt.kernel('conv2d_gemm_sg8', gemmSg8Src, d.defines) : rt.kernel('conv2d_gemm', gemmSrc, d.defines),
    {
      params: {
        ...d.params,
        N: g.N,
        CIN: sizes.CIN,
        SH: sizes.SH,
        SW: sizes.SW,
        M: sizes.M,
        OH: sizes.OH,
        OW: sizes.OW,
        NR: d.NR,
        NQ: d.NQ,
        TQ,
        G,
        MP,
      },
      buffers: [src.buffer(op), a.buffer(op), (bias ?? a).buffer(op), y.buffer(op)],
      workgroups: foldGrid(MP / d.TM, Math.ceil(G / d.WG)),
      op,
      flops: 2 * g.N * d.NR * d.NQ * sizes.M * sizes.CIN * d.taps,
      bytes: 4 * (src.size + a.size + g.N * d.NR * d.NQ * sizes.M),
      shapes: `${formatShape(src.shape)} -> ${formatShape(y.shape)}`,
    },
  );
}

function forwardImplicit(x: Tensor, w: Tensor, bias: Tensor | null, plan: ConvPlan): Tensor {
  const g = plan.geometry;
  const d = plan.forward!;
  const rt = x.rt;
  const a = relayout(w, g, false, Math.ceil(g.O / d.TM) * d.TM, OP);
  const y = empty(rt, [g.N, g.O, g.OH, g.OW], 'f32', OP);
  runCore(rt, d, g, x, a, bias, y, { CIN: g.C, SH: g.H, SW: g.W, M: g.O, OH: g.OH, OW: g.OW }, OP);
  a.dispose();
  return y;
}

function inputGradImplicit(dy: Tensor, w: Tensor, plan: ConvPlan, op: string): Tensor {
  const g = plan.geometry;
  const rt = dy.rt;
  if (plan.inputGradStride2) {
    const a = relayout(w, g, true, Math.ceil(g.C / STRIDE2_TM) * STRIDE2_TM, op);
    const dx = empty(rt, [g.N, g.C, g.H, g.W], 'f32', op);
    inputGradStride2(dy, a, dx, g, op);
    a.dispose();
    return dx;
  }
  const dx = plan.inputGrad.some((d) => d === null)
    ? fillTensor(rt, [g.N, g.C, g.H, g.W], 0, op)
    : empty(rt, [g.N, g.C, g.H, g.W], 'f32', op);
  let a: Tensor | null = null;
  for (const d of plan.inputGrad) {
    if (!d) continue;
    a ??= relayout(w, g, true, Math.ceil(g.C / d.TM) * d.TM, op);
    runCore(rt, d, g, dy, a, null, dx, { CIN: g.O, SH: g.OH, SW: g.OW, M: g.C, OH: g.H, OW: g.W }, op);
  }
  a?.dispose();
  return dx;
}

function weightGradImplicit(x: Tensor, dy: Tensor, plan: ConvPlan, op: string, into: Tensor | null): Tensor | null {
  const g = plan.geometry;
  const p = plan.weightGrad!;
  const rt = x.rt;
  const size = g.O * g.C * g.KH * g.KW;
  // One chunk with an accumulating .grad: the kernel adds its result there itself.
  const direct = p.chunks === 1 && into !== null;
  const { partial, deferred } = direct
    ? { partial: into!, deferred: false }
    : partialsFor(rt, into, p.chunks, size, op);
  const defines = direct ? { ...p.defines, ACCUMULATE: true } : p.defines;
  rt.dispatch(
    p.sg8 ? rt.kernel('conv2d_wgrad_sg8', wgradSg8Src, defines) : rt.kernel('conv2d_wgrad', wgradSrc, defines),
    {
      params: {
        N: g.N,
        C: g.C,
        H: g.H,
        W: g.W,
        O: g.O,
        OH: g.OH,
        OW: g.OW,
        L: p.lanes,
        RC: p.rowsPerChunk,
        R: g.N * g.OH,
        KH: g.KH,
        SH: g.SH,
        PH: g.PH,
        PW: g.PW,
        DH: g.DH,
      },
      buffers: [x.buffer(op), dy.buffer(op), dy.buffer(op), partial.buffer(op)],
      workgroups: [p.groups, p.chunks, 1],
      op,
      flops: 2 * g.N * g.OH * g.OW * size,
      bytes: 4 * (x.size + dy.size + partial.size),
      shapes: `x${formatShape(x.shape)} dy${formatShape(dy.shape)}`,
    },
  );
  if (direct || deferred) return null;
  return sumPartials(partial, [g.O, g.C, g.KH, g.KW], into, op);
}

/** The bias gradient; with `into` (the bias's accumulating .grad) added there and null returned. */
function biasGrad(dy: Tensor, g: ConvGeometry, into: Tensor | null, op: string): Tensor | null {
  const perImage = sum(reshape(dy, [g.N, g.O, g.OH * g.OW]), 2);
  if (g.N === 1) return reshapeOwned(perImage, [g.O]);
  if (!into) return sum(perImage, 0);
  sumFirstAxisInto(perImage, into, op);
  perImage.dispose();
  return null;
}

// ---------------------------------------------------------------------------------------------

/** The input gradient alone (PyTorch's torch.nn.grad.conv2d_input): dx for dy of conv2d(x, weight);
 *  f32 whatever rt.precision (conv2dMixedKernels has the f16-operand one). */
export function conv2dInputGrad(
  dy: Tensor,
  weight: Tensor,
  xShape: readonly number[],
  opts: Conv2dOptions = {},
): Tensor {
  const plan = conv2dPlanFor(dy.rt, xShape, weight.shape, opts);
  checkGrad(dy, plan.geometry);
  const op = `${OP}.backward`;
  return inputGrad(plan, dy, weight, op);
}

/** The weight gradient alone (PyTorch's torch.nn.grad.conv2d_weight): dw for dy of conv2d(x, weight);
 *  f32 whatever rt.precision (conv2dMixedKernels has the f16-operand one). */
export function conv2dWeightGrad(x: Tensor, dy: Tensor, wShape: readonly number[], opts: Conv2dOptions = {}): Tensor {
  const plan = conv2dPlanFor(x.rt, x.shape, wShape, opts);
  checkGrad(dy, plan.geometry);
  const op = `${OP}.backward`;
  return weightGrad(plan, x, dy, op, null)!;
}

function inputGrad(plan: ConvPlan, dy: Tensor, w: Tensor, op: string): Tensor {
  if (plan.tiled) return inputGradTiled(dy, w, plan.geometry, tiledFor(dy.rt, plan, 'dx'), op);
  if (plan.path === 'fold') return inputGradFolded(dy, w, plan.geometry, op);
  return plan.path === 'gemm' ? inputGradPointwise(dy, w, plan.geometry, op) : inputGradImplicit(dy, w, plan, op);
}

/** The weight gradient; where it is a sum of partials and `into` is given, added to `into` and null returned. */
function weightGrad(plan: ConvPlan, x: Tensor, dy: Tensor, op: string, into: Tensor | null): Tensor | null {
  if (plan.tiled) return weightGradTiled(x, dy, plan.geometry, tiledFor(x.rt, plan, 'dw'), op, into);
  if (plan.weightGradFolded) return weightGradFolded(x, dy, plan.geometry, op);
  return plan.path === 'gemm'
    ? weightGradPointwise(x, dy, plan.geometry, op, into)
    : weightGradImplicit(x, dy, plan, op, into);
}

function checkGrad(dy: Tensor, g: ConvGeometry): void {
  const want = [g.N, g.O, g.OH, g.OW];
  if (dy.rank !== 4 || dy.shape.some((d, i) => d !== want[i])) {
    throw new Error(`${OP}: gradient ${dy.describe()} does not match the convolution's output ${formatShape(want)}`);
  }
}

/** conv2d's mixed-precision kernels for one geometry, on operands already cast (its forward
 *  and backward call them; benchmarks time them apart from the casts). */
export interface MixedKernels {
  /** y (f32) from an f16 x; the weight is re-laid as f16. */
  forward(x16: Tensor, w: Tensor, bias: Tensor | null): Tensor;
  /** dx (f32) from dy cast by scaledHalf. */
  inputGrad(dy: ScaledHalf, w: Tensor): Tensor;
  /** dw (f32) from the f16 x and dy cast by scaledHalf; with `into`, added there and null returned. */
  weightGrad(x16: Tensor, dy: ScaledHalf, into?: Tensor | null): Tensor | null;
}

export function conv2dMixedKernels(plan: ConvPlan, rt: Runtime): MixedKernels {
  if (!plan.tiled) throw new Error(`${OP}: mixed precision needs the tiled kernels, which take kernels up to 57 taps`);
  const g = plan.geometry;
  const op = `${OP}.backward`;
  return {
    forward: (x16, w, bias) => forwardTiled(x16, w, bias, g, tiledFor(rt, plan, 'fwd', 'f16'), OP),
    inputGrad: (dy, w) => inputGradTiled(dy.half, w, g, tiledFor(rt, plan, 'dx', 'f16'), op, dy.amax),
    weightGrad: (x16, dy, into = null) =>
      weightGradTiled(x16, dy.half, g, tiledFor(rt, plan, 'dw', 'f16'), op, into, dy.amax),
  };
}

/**
 * Mixed precision: y = conv(f16(x), f16(weight)) accumulated in f32. The backward uses the f16 x
 * saved here (not x) and dy cast once per call as f16(dy * s) with s a power of two chosen from
 * max |dy| (ops/grad-scale.ts), shared by dx and dw; their kernels multiply the f32 results by
 * 1/s exactly. The bias gradient is summed from the f32 dy.
 */
function conv2dMixed(x: Tensor, weight: Tensor, bias: Tensor | null, plan: ConvPlan, args: Tensor[]): Tensor {
  const k = conv2dMixedKernels(plan, x.rt);
  const x16 = toHalf(x);
  const y = k.forward(x16, weight, bias);
  record(y, OP, args, (dy) => {
    const op = `${OP}.backward`;
    const scaled = x.requiresGrad || weight.requiresGrad ? scaledHalf(dy) : null;
    const grads = [
      x.requiresGrad ? k.inputGrad(scaled!, weight) : null,
      weight.requiresGrad ? k.weightGrad(x16, scaled!, leafGradTarget(weight)) : null,
      bias?.requiresGrad ? biasGrad(dy, plan.geometry, leafGradTarget(bias), op) : null,
    ];
    scaled?.half.dispose();
    scaled?.amax.dispose();
    return grads;
  });
  if (!y.node) x16.dispose();
  return y;
}

export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const args = bias ? [x, weight, bias] : [x, weight];
  requireF32(OP, ...args);
  sameRuntime(OP, ...args);
  const mixed = x.rt.precision === 'mixed';
  const plan = conv2dPlanFor(x.rt, x.shape, weight.shape, opts, !!bias, mixed);
  const g = plan.geometry;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== g.O)) {
    throw new Error(
      `${OP}: bias ${bias.describe()} does not match the ${g.O} output channels of weight ${weight.describe()}; it must have shape [${g.O}]`,
    );
  }
  const b = bias ?? null;
  // A kernel of more taps than the tiled family's table holds (beyond 7x8) stays f32.
  if (mixed && plan.tiled) return conv2dMixed(x, weight, b, plan, args);
  const y = plan.tiled
    ? forwardTiled(x, weight, b, g, tiledFor(x.rt, plan, 'fwd'), OP)
    : plan.path === 'fold'
      ? forwardFolded(x, weight, b, g)
      : plan.path === 'gemm'
        ? forwardPointwise(x, weight, b, g)
        : forwardImplicit(x, weight, b, plan);
  return record(y, OP, args, (dy) => {
    const op = `${OP}.backward`;
    return [
      x.requiresGrad ? inputGrad(plan, dy, weight, op) : null,
      // Gradients of accumulating leaves (a model's parameters) go straight into their .grad.
      weight.requiresGrad ? weightGrad(plan, x, dy, op, leafGradTarget(weight)) : null,
      bias?.requiresGrad ? biasGrad(dy, g, leafGradTarget(bias), op) : null,
    ];
  });
}
