// Matrix multiplication: [.., M, K] x [.., K, N] with equal batch dimensions, or a batched
// left operand times a plain matrix (folded into one large 2-D product). The backward pass
// reuses the same kernel with transposed reads, so no transpose is ever materialised.
import matmulSrc from '../../shaders/matmul.wgsl';
import { Tensor, formatShape } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, requireF32, sameRuntime } from './alloc.js';
import { reshape } from './shape.js';

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
}

/** Records C = op(A) op(B) into a new [batch * M * N] tensor. */
export function gemm(a: Tensor, b: Tensor, g: GemmArgs, op: string): Tensor {
  const rt = a.rt;
  const c = empty(rt, [g.batch, g.M, g.N], 'f32', op);
  const k = rt.kernel('matmul', matmulSrc, { TRANS_A: g.transA, TRANS_B: g.transB });
  rt.dispatch(k, {
    params: { M: g.M, N: g.N, K: g.K, strideA: g.strideA, strideB: g.strideB, strideC: g.M * g.N },
    buffers: [a.buffer(op), b.buffer(op), c.buffer(op)],
    workgroups: [Math.ceil(g.N / 32), Math.ceil(g.M / 32), g.batch],
    op,
    flops: 2 * g.batch * g.M * g.N * g.K,
    bytes: 4 * (g.batch * (g.M * g.K + g.M * g.N) + (g.strideB ? g.batch : 1) * g.K * g.N),
    shapes: `${g.batch}x${g.M}x${g.K} * ${g.K}x${g.N}`,
  });
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
