// Matrix multiplication: [.., M, K] x [.., K, N] with equal batch dimensions, or a batched
// left operand times a plain matrix (folded into one large 2-D product). The backward pass
// reuses the same kernel with transposed reads, so no transpose is ever materialised.
import matmulSrc from '../../shaders/matmul/matmul.wgsl';
import matmulVec4Src from '../../shaders/matmul/vec4.wgsl';
import matmulSg8Src from '../../shaders/matmul/sg8.wgsl';
import matmulTiledSrc from '../../shaders/matmul/tiled.wgsl';
import { type Tensor, formatShape } from '../tensor.js';
import { record } from '../autograd.js';
import type { Runtime, Kernel } from '../runtime.js';
import { workgroupProblem } from '../device-profile.js';
import type { ParamValues } from '../uniforms.js';
import { empty, sameRuntime } from './alloc.js';
import { requireHalf } from './cast.js';
import {
  checkSubgroupMatrix,
  subgroupMatrixKernel,
  subgroupMatrixShape,
  subgroupMatrixState,
  type CheckRuns,
} from './subgroup-matrix.js';
import { reshape } from './shape.js';

/**
 * The kernels. Per-lane ones, no workgroup memory (fastest on CPU drivers; measured on Mesa
 * lavapipe, 2 AVX2 cores, by process CPU time at 512^3: sg8 about 27 GFLOP/s, vec4 about 12,
 * scalar about 7; `npm run bench -- matmul` re-measures them into bench/results/matmul_variants.md):
 * - sg8: 8-wide subgroups share loads of A by broadcast; needs the device feature 'subgroups'
 *   with subgroup size 8, K % 4 == 0, N % 4 == 0 (and M % 4 == 0 when transA).
 * - vec4: vec4 loads of B; needs N % 4 == 0 and B not transposed.
 * - scalar: any shape.
 * Tiled ones (shaders/matmul/tiled.wgsl, for GPUs), any shape, named by their block of C:
 * - t128x128, t128x64, t64x64, t32x32: within 16 KiB of workgroup storage;
 * - t128x128k16: a K slice of 16 in 32 KiB, where the device allows it.
 * f16 operands (both f16; C is f32, accumulated in f32) run on the tiled kernels whatever family
 * the profile picks for f32: the per-lane kernels read f32 only, and on the CPU drivers that
 * prefer them f16 is a correctness path, not a fast one.
 * - sgmat: f16 only, on subgroup matrices (ops/subgroup-matrix.ts), where the device has them and
 *   the kernel passed its check on this device; a tuner candidate, never the untuned default
 *   (not yet measured on any GPU).
 */
export type GemmVariant = 'sg8' | 'vec4' | 'scalar' | 'sgmat' | TiledVariant;
export type TiledVariant = 't128x128' | 't128x64' | 't64x64' | 't32x32' | 't128x128k16';

/** The operands' dtype: f32, or f16 (f16 x f16 products, accumulated and stored in f32). */
export type GemmDType = 'f32' | 'f16';

export interface GemmArgs {
  batch: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** Elements between consecutive batch items; 0 reuses one matrix for the whole batch. */
  strideA: number;
  strideB: number;
  /** The operands' dtype (default f32); gemm() takes it from the tensors. */
  dtype?: GemmDType;
  /** Forces a kernel (tests and benchmarks); by default the profile's choice or a tuned one. */
  variant?: GemmVariant;
}

/** A tiled kernel's shape: WX x WY invocations, each TM x TN outputs, K slices of BK. */
interface Tile {
  WX: number;
  WY: number;
  TM: number;
  TN: number;
  BK: number;
}

const TILES: Record<TiledVariant, Tile> = {
  t128x128: { WX: 16, WY: 16, TM: 8, TN: 8, BK: 8 },
  t128x64: { WX: 16, WY: 16, TM: 8, TN: 4, BK: 8 },
  t64x64: { WX: 16, WY: 16, TM: 4, TN: 4, BK: 16 },
  t32x32: { WX: 8, WY: 8, TM: 4, TN: 4, BK: 16 },
  t128x128k16: { WX: 16, WY: 16, TM: 8, TN: 8, BK: 16 },
};
/** Largest block first: the default takes the first that still gives enough workgroups. */
export const TILED_VARIANTS = Object.keys(TILES) as TiledVariant[];
const TILED = TILED_VARIANTS;
const LANES = ['sg8', 'vec4', 'scalar'] as const;
/** Workgroups that keep a large GPU busy (not measured: about two per SM of a big GPU). */
const ENOUGH_GROUPS = 256;

const isTiled = (v: GemmVariant): v is TiledVariant => v in TILES;
const block = (t: Tile) => ({ rows: t.WY * t.TM, cols: t.WX * t.TN });
/** Two buffers of both k-major tiles. */
const tileStorage = (t: Tile) => 2 * 4 * t.BK * (t.WY * t.TM + t.WX * t.TN);

const MAX_GROUPS = 65535;

/** Whether the device runs 8-wide subgroups (lavapipe on AVX2), which the sg8 kernels assume. */
export function hasSubgroups8(rt: Runtime): boolean {
  return rt.profile.subgroups8;
}

/** Why a variant cannot run this product, or null when it can. */
export function gemmVariantProblem(rt: Runtime, g: GemmArgs, v: GemmVariant): string | null {
  const half = g.dtype === 'f16';
  if (half && !rt.profile.features.shaderF16) return 'f16 operands need the shader-f16 feature';
  if (isTiled(v)) {
    const t = TILES[v];
    return workgroupProblem(rt.profile, { x: t.WX, y: t.WY, storageBytes: tileStorage(t) });
  }
  if (v === 'sgmat') {
    if (!half) return 'the subgroup-matrix kernel reads f16 operands only';
    const shape = subgroupMatrixShape(rt.profile);
    if (typeof shape === 'string') return shape;
    const state = subgroupMatrixState(rt, g);
    if (state === 'passed') return null;
    return state === 'failed'
      ? 'it failed its check on this device (see the warning)'
      : 'it has not passed its check on this device yet (await subgroupMatrixReady)';
  }
  if (!(LANES as readonly string[]).includes(v))
    return `there is no matmul kernel '${v}' (known: ${[...LANES, ...TILED, 'sgmat'].join(', ')})`;
  if (half) return 'the per-lane kernels read f32 only; f16 operands run on the tiled kernels';
  if (v === 'scalar') return null;
  if (g.N % 4) return `N (${g.N}) must be a multiple of 4`;
  if (g.strideB % 4 || (v === 'sg8' && g.strideA % 4))
    return `batch strides (${g.strideA}, ${g.strideB}) must be multiples of 4`;
  if (v === 'vec4') return g.transB ? 'B must not be transposed' : null;
  if (!hasSubgroups8(rt)) return 'the device has no 8-wide subgroups (feature "subgroups")';
  if (g.K % 4) return `K (${g.K}) must be a multiple of 4`;
  if (g.transA && g.M % 4) return `M (${g.M}) must be a multiple of 4 when A is transposed`;
  return null;
}

/** The profile's kernel for this product, without tuning. */
export function chooseGemmVariant(rt: Runtime, g: GemmArgs): GemmVariant {
  if (rt.profile.kernels.gemm === 'lanes' && g.dtype !== 'f16') {
    for (const v of ['sg8', 'vec4'] as const) if (!gemmVariantProblem(rt, g, v)) return v;
    return 'scalar';
  }
  const fits = TILED.filter((v) => !gemmVariantProblem(rt, g, v) && v !== 't128x128k16');
  const groups = (v: TiledVariant) => {
    const b = block(TILES[v]);
    return g.batch * Math.ceil(g.M / b.rows) * Math.ceil(g.N / b.cols);
  };
  return (
    fits.find((v) => groups(v) >= ENOUGH_GROUPS) ?? fits[fits.length - 1] ?? (g.dtype === 'f16' ? 't32x32' : 'scalar')
  );
}

/** The variants worth timing for this product: every tiled one that fits, sg8 / vec4 and sgmat where they apply. */
export function gemmCandidates(rt: Runtime, g: GemmArgs): GemmVariant[] {
  return ([...TILED, 'sg8', 'vec4', 'sgmat'] as GemmVariant[]).filter((v) => !gemmVariantProblem(rt, g, v));
}

const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

/** The tuning class: dtype, transposes, dimensions rounded up to powers of two, and which of them
 *  divide by 4 (that decides which kernels apply and how they load). */
export function gemmShapeClass(g: GemmArgs): string {
  const by4 = [g.M, g.N, g.K, g.strideA, g.strideB].map((x) => (x % 4 ? 0 : 1)).join('');
  return `matmul|${g.dtype ?? 'f32'}|${g.transA ? 'T' : 'N'}${g.transB ? 'T' : 'N'}|b${pow2(g.batch)}|m${pow2(g.M)}|n${pow2(g.N)}|k${pow2(g.K)}|by4=${by4}`;
}

interface GemmPlan {
  kernel: Kernel;
  dispatches: { params: ParamValues; workgroups: [number, number, number]; rows: number }[];
}

/** `unscale`: the variant whose result is multiplied by gradUnscale(amax) from a fourth binding. */
function plan(rt: Runtime, g: GemmArgs, variant: GemmVariant, unscale: boolean): GemmPlan {
  let kernel: Kernel;
  let rows: number;
  let cols: number;
  if (variant === 'sgmat') {
    const k = subgroupMatrixKernel(rt, g, unscale, checkRuns(rt, g));
    if (!k)
      throw new Error(`matmul: the subgroup-matrix kernel is not available (${gemmVariantProblem(rt, g, variant)})`);
    return sgmatPlan(rt, g, k);
  }
  if (isTiled(variant)) {
    const t = TILES[variant];
    ({ rows, cols } = block(t));
    // vec4 bindings need whole vec4s (and at least one: an empty operand is a 4-byte buffer).
    const vecA = (g.transA ? g.M : g.K) % 4 === 0 && g.strideA % 4 === 0 && g.M * g.K > 0;
    const vecB = (g.transB ? g.K : g.N) % 4 === 0 && g.strideB % 4 === 0 && g.K * g.N > 0;
    const T = g.dtype ?? 'f32';
    kernel = rt.kernel('matmul_tiled', matmulTiledSrc, {
      ...t,
      T,
      UNSCALE: unscale,
      TRANS_A: g.transA,
      TRANS_B: g.transB,
      CHECKED: g.M % rows !== 0 || g.N % cols !== 0 || g.K % t.BK !== 0,
      VEC_A: vecA,
      VEC_B: vecB,
      ELEM_A: vecA ? `vec4<${T}>` : T,
      ELEM_B: vecB ? `vec4<${T}>` : T,
    });
  } else {
    const info = LANE_KERNELS[variant];
    ({ rows, cols } = info);
    const defines: Record<string, boolean> = { TRANS_A: g.transA };
    if (variant !== 'vec4') defines.TRANS_B = g.transB;
    if (info.checked) defines.CHECKED = info.checked(g);
    kernel = rt.kernel(`matmul_${variant}`, info.src, defines);
  }
  return { kernel, dispatches: splitRows(g, rows, cols) };
}

/** The subgroup-matrix kernel's plan (`kernel` may still be on trial: ops/subgroup-matrix.ts). */
function sgmatPlan(rt: Runtime, g: GemmArgs, kernel: Kernel): GemmPlan {
  const shape = subgroupMatrixShape(rt.profile);
  if (typeof shape === 'string') throw new Error(`matmul: no subgroup-matrix kernel here: ${shape}`);
  return { kernel, dispatches: splitRows(g, shape.rows, shape.cols) };
}

/** How the tiled kernel and the subgroup-matrix kernel under trial run a check's problem. */
function checkRuns(rt: Runtime, spec: { transA: boolean; transB: boolean }): CheckRuns {
  const args = (p: { batch: number; M: number; N: number; K: number }): GemmArgs => ({
    ...p,
    transA: spec.transA,
    transB: spec.transB,
    strideA: p.M * p.K,
    strideB: p.K * p.N,
    dtype: 'f16',
  });
  return {
    reference: (p, unscale) => {
      const g = args(p);
      const tiled = chooseGemmVariant(rt, g);
      return plan(rt, g, tiled, unscale);
    },
    candidate: (p, kernel) => sgmatPlan(rt, args(p), kernel),
  };
}

/** Resolves when the subgroup-matrix kernel for g's transposes has been checked on rt: whether it may run. */
export function subgroupMatrixReady(rt: Runtime, g: GemmArgs): Promise<boolean> {
  return checkSubgroupMatrix(rt, g, checkRuns(rt, g));
}

/** The dispatches of a product in blocks of rows x cols: row blocks beyond the 65535-workgroup
 *  limit go into further dispatches. */
function splitRows(g: GemmArgs, rows: number, cols: number): GemmPlan['dispatches'] {
  const dispatches: GemmPlan['dispatches'] = [];
  const rowsPerDispatch = MAX_GROUPS * rows;
  for (let rowStart = 0; rowStart < g.M; rowStart += rowsPerDispatch) {
    const n = Math.min(rowsPerDispatch, g.M - rowStart);
    dispatches.push({
      params: { M: g.M, N: g.N, K: g.K, rowStart, strideA: g.strideA, strideB: g.strideB, strideC: g.M * g.N },
      workgroups: [Math.ceil(g.N / cols), Math.ceil(n / rows), g.batch],
      rows: n,
    });
  }
  return dispatches;
}

const LANE_KERNELS: Record<
  (typeof LANES)[number],
  { src: string; rows: number; cols: number; checked?: (g: GemmArgs) => boolean }
> = {
  sg8: { src: matmulSg8Src, rows: 16, cols: 32, checked: (g) => g.M % 16 !== 0 || g.N % 32 !== 0 },
  vec4: { src: matmulVec4Src, rows: 6, cols: 64, checked: (g) => g.M % 6 !== 0 || g.N % 64 !== 0 },
  scalar: { src: matmulSrc, rows: 32, cols: 32 },
};

/** The kernel for this product: forced, tuned (rt.tuner) or the profile's. */
function pickVariant(rt: Runtime, g: GemmArgs, unscale: boolean): { variant: GemmVariant; tuned: boolean } {
  if (g.variant) return { variant: g.variant, tuned: false };
  const fallback = chooseGemmVariant(rt, g);
  if (rt.tuner.mode === 'off') return { variant: fallback, tuned: false };
  // The subgroup-matrix kernel is a candidate once checked: until then the class is not decided
  // (a decision without it would be cached for good); the first call starts the check.
  if (g.dtype === 'f16' && typeof subgroupMatrixShape(rt.profile) !== 'string') {
    const state = subgroupMatrixState(rt, g);
    if (state === 'unchecked') void subgroupMatrixReady(rt, g);
    if (state === 'unchecked' || state === 'pending') return { variant: fallback, tuned: false };
  }
  const bytes = (n: number) => (g.dtype === 'f16' ? 2 : 4) * n;
  const span = (stride: number, one: number) => (g.batch - 1) * stride + one;
  const { name, tuned } = rt.tuner.choose({
    key: gemmShapeClass(g),
    candidates: gemmCandidates(rt, g),
    fallback,
    run: (name, rec) => {
      const p = plan(rt, g, name as GemmVariant, unscale);
      const buffers = [
        rec.scratch(0, bytes(span(g.strideA, g.M * g.K))),
        rec.scratch(1, bytes(span(g.strideB, g.K * g.N))),
        rec.scratch(2, 4 * g.batch * g.M * g.N),
        ...(unscale ? [rec.scratch(3, 4)] : []),
      ];
      for (const d of p.dispatches) rec.dispatch(p.kernel, d.params, buffers, d.workgroups);
    },
  });
  return { variant: name as GemmVariant, tuned };
}

/**
 * Records C = op(A) op(B) into a new f32 [batch * M * N] tensor; A and B both f32 or both f16.
 * `unscaleBy` (f16 operands only): the amax of scaledHalf (ops/grad-scale.ts) for the operand
 * cast as f16(g * s); C is multiplied by 1/s (exact).
 */
export function gemm(a: Tensor, b: Tensor, args: GemmArgs, op: string, unscaleBy?: Tensor): Tensor {
  const rt = sameRuntime(op, a, b);
  const g: GemmArgs = { ...args, dtype: operandDType(op, a, b, unscaleBy) };
  const { variant, tuned } = pickVariant(rt, g, !!unscaleBy);
  const problem = gemmVariantProblem(rt, g, variant);
  if (problem)
    throw new Error(
      `${op}: the ${variant} matmul kernel cannot run ${g.batch}x${g.M}x${g.K} * ${g.K}x${g.N}: ${problem}; leave variant unset to choose automatically`,
    );
  if (g.batch > MAX_GROUPS)
    throw new Error(`${op}: batch ${g.batch} exceeds ${MAX_GROUPS}; fold the batch into M or split the call`);
  const p = plan(rt, g, variant, !!unscaleBy);
  const c = empty(rt, [g.batch, g.M, g.N], 'f32', op);
  const buffers = [a.buffer(op), b.buffer(op), c.buffer(op), ...(unscaleBy ? [unscaleBy.buffer(op)] : [])];
  const size = g.dtype === 'f16' ? 2 : 4;
  for (const d of p.dispatches) {
    rt.dispatch(p.kernel, {
      params: d.params,
      buffers,
      workgroups: d.workgroups,
      op,
      flops: 2 * g.batch * d.rows * g.N * g.K,
      bytes: g.batch * (size * d.rows * g.K + 4 * d.rows * g.N) + size * (g.strideB ? g.batch : 1) * g.K * g.N,
      shapes: `${g.batch}x${d.rows}x${g.K} * ${g.K}x${g.N} (${variant})`,
      tuned,
    });
  }
  return c;
}

/** The operands' dtype; throws unless both are f32 or both f16 (and `unscaleBy` fits them). */
function operandDType(op: string, a: Tensor, b: Tensor, unscaleBy?: Tensor): GemmDType {
  for (const t of unscaleBy ? [a, b, unscaleBy] : [a, b]) t.buffer(op); // a disposed input fails here
  const dtype = a.dtype;
  if (dtype !== b.dtype || (dtype !== 'f32' && dtype !== 'f16'))
    throw new Error(
      `${op}: operands must both be f32 or both f16 (an f16 product accumulates in f32), got ${a.describe()} and ${b.describe()}; convert with toHalf() or toFloat()`,
    );
  if (dtype === 'f16') requireHalf(a.rt.profile.features.shaderF16, op);
  if (unscaleBy && (dtype !== 'f16' || unscaleBy.dtype !== 'u32' || unscaleBy.size !== 1))
    throw new Error(
      `${op}: unscaleBy must be scaledHalf's amax (u32[1]) for f16 operands, got ${unscaleBy.describe()} with ${a.describe()}`,
    );
  return dtype;
}

/** A x B over the last two dimensions; f32 x f32, or f16 x f16 into f32 (no gradient: f16 tensors take none). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const op = 'matmul';
  sameRuntime(op, a, b);
  operandDType(op, a, b);
  if (a.rank < 2 || b.rank < 2)
    throw new Error(`matmul: both operands need at least 2 dimensions, got ${a.describe()} and ${b.describe()}`);
  const [M, K] = a.shape.slice(-2);
  const [Kb, N] = b.shape.slice(-2);
  if (K !== Kb) {
    throw new Error(
      `matmul: inner dimensions differ: ${a.describe()} x ${b.describe()} (${K} vs ${Kb}); transpose one operand`,
    );
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  if (b.rank === 2) {
    const rows = a.size / K;
    const c = gemm(a, b, { batch: 1, M: rows, N, K, transA: false, transB: false, strideA: 0, strideB: 0 }, op);
    const out = reshape(c, [...batchA, M, N]);
    c.dispose();
    return record(out, op, [a, b], (g) => [
      a.requiresGrad
        ? reshapeTo(
            gemm(
              g,
              b,
              { batch: 1, M: rows, N: K, K: N, transA: false, transB: true, strideA: 0, strideB: 0 },
              'matmul.backward',
            ),
            a.shape,
          )
        : null,
      b.requiresGrad
        ? reshapeTo(
            gemm(
              a,
              g,
              { batch: 1, M: K, N, K: rows, transA: true, transB: false, strideA: 0, strideB: 0 },
              'matmul.backward',
            ),
            b.shape,
          )
        : null,
    ]);
  }
  if (batchA.length !== batchB.length || batchA.some((d, i) => d !== batchB[i])) {
    throw new Error(
      `matmul: batch dimensions differ: ${formatShape(batchA)} vs ${formatShape(batchB)}; make them equal or pass a 2-D right operand`,
    );
  }
  const batch = a.size / (M * K);
  const c = gemm(a, b, { batch, M, N, K, transA: false, transB: false, strideA: M * K, strideB: K * N }, op);
  const out = reshape(c, [...batchA, M, N]);
  c.dispose();
  return record(out, op, [a, b], (g) => [
    a.requiresGrad
      ? reshapeTo(
          gemm(
            g,
            b,
            { batch, M, N: K, K: N, transA: false, transB: true, strideA: M * N, strideB: K * N },
            'matmul.backward',
          ),
          a.shape,
        )
      : null,
    b.requiresGrad
      ? reshapeTo(
          gemm(
            a,
            g,
            { batch, M: K, N, K: M, transA: true, transB: false, strideA: M * K, strideB: M * N },
            'matmul.backward',
          ),
          b.shape,
        )
      : null,
  ]);
}

function reshapeTo(t: Tensor, shape: readonly number[]): Tensor {
  const v = reshape(t, shape);
  t.dispose();
  return v;
}
