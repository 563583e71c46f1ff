// Matrix multiplication: [.., M, K] x [.., K, N] with equal batch dimensions, or a batched
// left operand times a plain matrix (folded into one large 2-D product). The backward pass
// reuses the same kernel with transposed reads, so no transpose is ever materialised.
import matmulSrc from '../../shaders/matmul.wgsl';
import matmulVec4Src from '../../shaders/matmul_vec4.wgsl';
import matmulSg8Src from '../../shaders/matmul_sg8.wgsl';
import { Tensor, formatShape } from '../tensor.js';
import { record } from '../autograd.js';
import type { Runtime } from '../runtime.js';
import { empty, requireF32, sameRuntime } from './alloc.js';
import { reshape } from './shape.js';

/**
 * The kernels, fastest first where they apply (measured on Mesa lavapipe, 2 AVX2 cores, by
 * process CPU time at 512^3: sg8 about 27 GFLOP/s, vec4 about 12, scalar about 7;
 * `npm run bench -- matmul` re-measures them into bench/results/matmul_variants.md):
 * - sg8: 8-wide subgroups share loads of A by broadcast; needs the device feature 'subgroups'
 *   with subgroup size 8, K % 4 == 0, N % 4 == 0 (and M % 4 == 0 when transA).
 * - vec4: vec4 loads of B; needs N % 4 == 0 and B not transposed.
 * - scalar: any shape.
 */
export type GemmVariant = 'sg8' | 'vec4' | 'scalar';

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
  /** Forces a kernel (tests and benchmarks); by default the fastest applicable one. */
  variant?: GemmVariant;
}

interface VariantInfo {
  src: string;
  /** Rows and columns of C per workgroup. */
  rows: number;
  cols: number;
  /** Whether bounds checks can be dropped for this shape (the CHECKED define). */
  checked?: (g: GemmArgs) => boolean;
}

const VARIANTS: Record<GemmVariant, VariantInfo> = {
  sg8: { src: matmulSg8Src, rows: 16, cols: 32, checked: (g) => g.M % 16 !== 0 || g.N % 32 !== 0 },
  vec4: { src: matmulVec4Src, rows: 6, cols: 64, checked: (g) => g.M % 6 !== 0 || g.N % 64 !== 0 },
  scalar: { src: matmulSrc, rows: 32, cols: 32 },
};

const MAX_GROUPS = 65535;

/** Whether the device runs 8-wide subgroups (lavapipe on AVX2), which the sg8 kernel assumes. */
export function hasSubgroups8(rt: Runtime): boolean {
  const info = rt.device.adapterInfo as GPUAdapterInfo | undefined;
  return rt.device.features.has('subgroups') && info?.subgroupMinSize === 8 && info?.subgroupMaxSize === 8;
}

/** Why a variant cannot run this product, or null when it can. */
export function gemmVariantProblem(rt: Runtime, g: GemmArgs, v: GemmVariant): string | null {
  if (v === 'scalar') return null;
  if (g.N % 4) return `N (${g.N}) must be a multiple of 4`;
  if (g.strideB % 4 || (v === 'sg8' && g.strideA % 4)) return `batch strides (${g.strideA}, ${g.strideB}) must be multiples of 4`;
  if (v === 'vec4') return g.transB ? 'B must not be transposed' : null;
  if (!hasSubgroups8(rt)) return 'the device has no 8-wide subgroups (feature "subgroups")';
  if (g.K % 4) return `K (${g.K}) must be a multiple of 4`;
  if (g.transA && g.M % 4) return `M (${g.M}) must be a multiple of 4 when A is transposed`;
  return null;
}

/** The kernel gemm uses for this product on this device: the first applicable of sg8, vec4, scalar. */
export function chooseGemmVariant(rt: Runtime, g: GemmArgs): GemmVariant {
  for (const v of ['sg8', 'vec4'] as const) if (!gemmVariantProblem(rt, g, v)) return v;
  return 'scalar';
}

/** Records C = op(A) op(B) into a new [batch * M * N] tensor. */
export function gemm(a: Tensor, b: Tensor, g: GemmArgs, op: string): Tensor {
  const rt = a.rt;
  const variant = g.variant ?? chooseGemmVariant(rt, g);
  const problem = gemmVariantProblem(rt, g, variant);
  if (problem) throw new Error(`${op}: the ${variant} matmul kernel cannot run ${g.batch}x${g.M}x${g.K} * ${g.K}x${g.N}: ${problem}; leave variant unset to choose automatically`);
  if (g.batch > MAX_GROUPS) throw new Error(`${op}: batch ${g.batch} exceeds ${MAX_GROUPS}; fold the batch into M or split the call`);
  const info = VARIANTS[variant];
  const defines: Record<string, boolean> = { TRANS_A: g.transA };
  if (variant !== 'vec4') defines.TRANS_B = g.transB;
  if (info.checked) defines.CHECKED = info.checked(g);
  const k = rt.kernel(`matmul_${variant}`, info.src, defines);
  const c = empty(rt, [g.batch, g.M, g.N], 'f32', op);
  const buffers = [a.buffer(op), b.buffer(op), c.buffer(op)];
  // Row blocks beyond the 65535-workgroup limit go into further dispatches.
  const rowsPerDispatch = MAX_GROUPS * info.rows;
  for (let rowStart = 0; rowStart < g.M; rowStart += rowsPerDispatch) {
    const rows = Math.min(rowsPerDispatch, g.M - rowStart);
    rt.dispatch(k, {
      params: { M: g.M, N: g.N, K: g.K, rowStart, strideA: g.strideA, strideB: g.strideB, strideC: g.M * g.N },
      buffers,
      workgroups: [Math.ceil(g.N / info.cols), Math.ceil(rows / info.rows), g.batch],
      op,
      flops: 2 * g.batch * rows * g.N * g.K,
      bytes: 4 * (g.batch * (rows * g.K + rows * g.N) + (g.strideB ? g.batch : 1) * g.K * g.N),
      shapes: `${g.batch}x${rows}x${g.K} * ${g.K}x${g.N} (${variant})`,
    });
  }
  return c;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  const op = 'matmul';
  requireF32(op, a, b);
  sameRuntime(op, a, b);
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: both operands need at least 2 dimensions, got ${a.describe()} and ${b.describe()}`);
  const [M, K] = a.shape.slice(-2);
  const [Kb, N] = b.shape.slice(-2);
  if (K !== Kb) {
    throw new Error(`matmul: inner dimensions differ: ${a.describe()} x ${b.describe()} (${K} vs ${Kb}); transpose one operand`);
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  if (b.rank === 2) {
    const rows = a.size / K;
    const c = gemm(a, b, { batch: 1, M: rows, N, K, transA: false, transB: false, strideA: 0, strideB: 0 }, op);
    const out = reshape(c, [...batchA, M, N]);
    c.dispose();
    return record(out, op, [a, b], (g) => [
      a.requiresGrad ? reshapeTo(gemm(g, b, { batch: 1, M: rows, N: K, K: N, transA: false, transB: true, strideA: 0, strideB: 0 }, 'matmul.backward'), a.shape) : null,
      b.requiresGrad ? reshapeTo(gemm(a, g, { batch: 1, M: K, N, K: rows, transA: true, transB: false, strideA: 0, strideB: 0 }, 'matmul.backward'), b.shape) : null,
    ]);
  }
  if (batchA.length !== batchB.length || batchA.some((d, i) => d !== batchB[i])) {
    throw new Error(`matmul: batch dimensions differ: ${formatShape(batchA)} vs ${formatShape(batchB)}; make them equal or pass a 2-D right operand`);
  }
  const batch = a.size / (M * K);
  const c = gemm(a, b, { batch, M, N, K, transA: false, transB: false, strideA: M * K, strideB: K * N }, op);
  const out = reshape(c, [...batchA, M, N]);
  c.dispose();
  return record(out, op, [a, b], (g) => [
    a.requiresGrad ? reshapeTo(gemm(g, b, { batch, M, N: K, K: N, transA: false, transB: true, strideA: M * N, strideB: K * N }, 'matmul.backward'), a.shape) : null,
    b.requiresGrad ? reshapeTo(gemm(a, g, { batch, M: K, N, K: M, transA: true, transB: false, strideA: M * K, strideB: M * N }, 'matmul.backward'), b.shape) : null,
  ]);
}

function reshapeTo(t: Tensor, shape: readonly number[]): Tensor {
  const v = reshape(t, shape);
  t.dispose();
  return v;
}
