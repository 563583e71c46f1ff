// y = x W^T + b over the last dimension (PyTorch's Linear): x [.., in], W [out, in], b [out].
// Forward and both weight-side gradients are one GEMM each through matmul.ts (transposed reads,
// nothing materialised); the bias is added in place to the GEMM output.
// Under rt.precision 'mixed' (engine/autocast.ts; the backward follows the forward's precision)
// the GEMMs read f16 operands and accumulate in f32: x and W are rounded to f16 once in the
// forward and kept for the backward; the output gradient is cast once by scaledHalf (scaled by a
// power of two from its own max |dy|, so small gradients keep f16 precision) and both gradient
// GEMMs multiply their f32 results by the exact 1/s. The bias gradient sums the f32 dy.
import biasSrc from '../../shaders/linear_bias.wgsl';
import type { Tensor } from '../tensor.js';
import { record, leafGradTarget } from '../autograd.js';
import { requireF32, sameRuntime } from './alloc.js';
import { toHalf } from './cast.js';
import { scaledHalf } from './grad-scale.js';
import { gemm } from './matmul.js';
import { reshape } from './shape.js';
import { sum, sumFirstAxisInto } from './reduce.js';

export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const op = 'linear';
  const args = bias ? [x, weight, bias] : [x, weight];
  requireF32(op, ...args);
  const rt = sameRuntime(op, ...args);
  if (weight.rank !== 2) throw new Error(`${op}: weight must be [out, in], got ${weight.describe()}`);
  const [out, inF] = weight.shape;
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) {
    throw new Error(
      `${op}: input ${x.describe()} must end in the ${inF} input features of weight ${weight.describe()}`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== out)) {
    throw new Error(
      `${op}: bias ${bias.describe()} does not match the ${out} outputs of weight ${weight.describe()}; it must have shape [${out}]`,
    );
  }
  const rows = x.size / inF;
  const mixed = rt.precision === 'mixed';
  // The operands the GEMMs read: f32 as given, or their f16 roundings.
  const xOp = mixed ? toHalf(x) : x;
  const wOp = mixed ? toHalf(weight) : weight;
  const c = gemm(
    xOp,
    wOp,
    { batch: 1, M: rows, N: out, K: inF, transA: false, transB: true, strideA: 0, strideB: 0 },
    op,
  );
  if (bias) {
    rt.dispatch(rt.kernel('linear_bias', biasSrc), {
      params: { n: c.size, cols: out },
      buffers: [bias.buffer(op), c.buffer(op)],
      workgroups: rt.grid1d(c.size, 256),
      op,
      flops: c.size,
      bytes: 8 * c.size,
      shapes: `${rows}x${out}`,
    });
  }
  const y = reshape(c, [...x.shape.slice(0, -1), out]);
  c.dispose();
  record(y, op, args, (g) => {
    const bop = `${op}.backward`;
    // dy as the GEMMs' operand: f32, or f16(dy * s) with the amax that gives 1/s (cast only
    // when a GEMM reads it; the bias gradient sums the f32 dy).
    const scaled = mixed && (x.requiresGrad || weight.requiresGrad) ? scaledHalf(g) : null;
    const dy = scaled ?? { half: g, amax: undefined };
    const grads = [
      x.requiresGrad
        ? reshape(
            gemm(
              dy.half,
              wOp,
              { batch: 1, M: rows, N: inF, K: out, transA: false, transB: false, strideA: 0, strideB: 0 },
              bop,
              dy.amax,
            ),
            x.shape,
          )
        : null,
      weight.requiresGrad
        ? reshape(
            gemm(
              dy.half,
              xOp,
              { batch: 1, M: out, N: inF, K: rows, transA: true, transB: false, strideA: 0, strideB: 0 },
              bop,
              dy.amax,
            ),
            weight.shape,
          )
        : null,
      bias?.requiresGrad ? biasGrad(reshape(g, [rows, out]), bias, bop) : null,
    ];
    scaled?.half.dispose();
    scaled?.amax.dispose();
    return grads;
  });
  // Without a backward to come, the f16 copies go now (the GEMM that read them is recorded).
  if (mixed && !y.node) {
    xOp.dispose();
    wOp.dispose();
  }
  return y;
}

/** Sums g [rows, out] over rows; into the bias's .grad when it is an accumulating leaf (then null). */
function biasGrad(g: Tensor, bias: Tensor, op: string): Tensor | null {
  const into = leafGradTarget(bias);
  if (!into) return sum(g, 0);
  sumFirstAxisInto(g, into, op);
  return null;
}
