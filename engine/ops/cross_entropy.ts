// Cross-entropy of logits [N, C] against integer labels [N], fused: one kernel computes each
// row's log-sum-exp and loss, one computes the gradient (softmax - onehot) * g (/ N for the
// mean) directly, so no softmax or one-hot tensor is ever made. The per-row log-sum-exp is
// saved for the backward pass (freed with the scope that holds the forward pass).
import ceSrc from '../../shaders/cross_entropy.wgsl';
import ceGradSrc from '../../shaders/cross_entropy_grad.wgsl';
import type { Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, requireF32, sameRuntime } from './alloc.js';
import { mean, sum } from './reduce.js';

export type Reduction = 'mean' | 'sum' | 'none';

export function crossEntropy(logits: Tensor, labels: Tensor, reduction: Reduction = 'mean'): Tensor {
  const op = 'crossEntropy';
  requireF32(op, logits);
  sameRuntime(op, logits, labels);
  if (logits.rank !== 2)
    throw new Error(`crossEntropy: logits must be [N, C], got ${logits.describe()}; reshape extra axes into N`);
  const [N, C] = logits.shape;
  if (labels.dtype !== 'i32' || labels.rank !== 1 || labels.shape[0] !== N) {
    throw new Error(
      `crossEntropy: labels must be i32 [${N}] (one class index per row of logits ${logits.describe()}), got ${labels.describe()}`,
    );
  }
  if (C === 0) throw new Error(`crossEntropy: logits ${logits.describe()} have no classes`);
  logits.buffer(op);
  labels.buffer(op);
  const rt = logits.rt;
  const rowLoss = empty(rt, [N], 'f32', op);
  const lse = empty(rt, [N], 'f32', op);
  rt.dispatch(rt.kernel('cross_entropy', ceSrc), {
    params: { rows: N, classes: C, invalid: NaN },
    buffers: [logits.buffer(op), labels.buffer(op), rowLoss.buffer(op), lse.buffer(op)],
    workgroups: rt.grid1d(N, 256),
    op,
    flops: 5 * N * C,
    bytes: 8 * N * C + 12 * N,
    shapes: `[${N}, ${C}]`,
  });
  let out = rowLoss;
  if (reduction !== 'none') {
    out = reduction === 'mean' ? mean(rowLoss) : sum(rowLoss);
    rowLoss.dispose();
  }
  const scale = reduction === 'mean' ? 1 / N : 1;
  record(out, op, [logits], (g) => {
    const dx = empty(rt, logits.shape, 'f32', `${op}.backward`);
    rt.dispatch(rt.kernel('cross_entropy_grad', ceGradSrc), {
      params: { rows: N, classes: C, gStride: reduction === 'none' ? 1 : 0, scale },
      buffers: [logits.buffer(op), labels.buffer(op), lse.buffer(op), g.buffer(op), dx.buffer(op)],
      workgroups: rt.grid1d(N * C, 256),
      op: `${op}.backward`,
      flops: 4 * N * C,
      bytes: 8 * N * C + 12 * N,
      shapes: `[${N}, ${C}]`,
    });
    return [dx];
  });
  if (!out.node) lse.dispose();
  return out;
}
