// The contrastive loss (models/ops/contrastive.ts) as a GEMM and per-row kernels, the variant
// for lavapipe. The R x (K+1) logits need not exist whole: for each chunk of rows the negative
// logits come from one GEMM (q_chunk . queue^T), an online log-sum-exp kernel turns them into
// per-row losses, and the backward recomputes the chunk (unless all logits fit in the budget
// and were kept), turns it into softmax weights in place and multiplies back by the queue.
import lseSrc from '../../shaders/densecl/contrastive_lse.wgsl';
import gradSrc from '../../shaders/densecl/contrastive_grad.wgsl';
import type { Tensor } from '../../engine/tensor.js';
import { record } from '../../engine/autograd.js';
import { empty } from '../../engine/ops/alloc.js';
import { gemm } from '../../engine/ops/matmul.js';
import { slice, copyRows } from '../../engine/ops/slice.js';
import { sum } from '../../engine/ops/reduce.js';
import { reshape } from '../../engine/ops/shape.js';
import { unaryMap } from '../../engine/ops/pointwise.js';

/** Inputs checked by queueContrastiveLoss. `maxLogitBytes`: the largest logits block kept, in bytes. */
export function gemmContrastiveLoss(
  q: Tensor,
  pos: Tensor,
  queue: Tensor,
  tau: number,
  maxLogitBytes: number | undefined,
  op: string,
): Tensor {
  const rt = q.rt;
  const [R, D] = q.shape;
  const K = queue.shape[0];
  const budget = maxLogitBytes ?? 64 << 20;
  const chunk = Math.max(1, Math.min(R, Math.floor(budget / (4 * K))));
  const chunks = Math.ceil(R / chunk);
  const invTau = 1 / tau;
  const lse = empty(rt, [R], 'f32', op);
  const perRow = empty(rt, [R], 'f32', op);
  const logitsOf = (start: number, rows: number): Tensor => {
    const qc = chunks === 1 ? q : slice(q, 0, start, start + rows);
    const l = gemm(
      qc,
      queue,
      { batch: 1, M: rows, N: K, K: D, transA: false, transB: true, strideA: 0, strideB: 0 },
      op,
    );
    if (qc !== q) qc.dispose();
    return l;
  };
  let kept: Tensor | null = null;
  for (let c = 0; c < chunks; c++) {
    const start = c * chunk;
    const rows = Math.min(chunk, R - start);
    const logits = logitsOf(start, rows);
    rt.dispatch(rt.kernel('contrastive_lse', lseSrc), {
      params: { rows, K, rowOffset: start, invTau },
      buffers: [logits.buffer(op), pos.buffer(op), lse.buffer(op), perRow.buffer(op)],
      workgroups: rt.grid1d(rows, 64),
      op,
      flops: 4 * rows * K,
      bytes: 4 * rows * K,
      shapes: `${rows}x${K}`,
    });
    if (chunks === 1) kept = logits;
    else logits.dispose();
  }
  const total = sum(perRow);
  perRow.dispose();
  const loss = unaryMap(total, 'alpha * v', op, 1 / R);
  total.dispose();
  return record(loss, op, [q, pos, queue], (g) => {
    const gq = chunks === 1 ? null : empty(rt, [R, D], 'f32', `${op}.backward`);
    const dpos = empty(rt, [R], 'f32', `${op}.backward`);
    let result: Tensor | null = null;
    for (let c = 0; c < chunks; c++) {
      const start = c * chunk;
      const rows = Math.min(chunk, R - start);
      const logits = kept ?? logitsOf(start, rows);
      rt.dispatch(rt.kernel('contrastive_grad', gradSrc), {
        params: { rows, K, rowOffset: start, invTau, invRows: 1 / R },
        buffers: [g.buffer(op), pos.buffer(op), lse.buffer(op), logits.buffer(op), dpos.buffer(op)],
        workgroups: rt.grid1d(rows * (K + 1), 256),
        op: `${op}.backward`,
        flops: 4 * rows * (K + 1),
        bytes: 8 * rows * K,
      });
      const gqc = gemm(
        logits,
        queue,
        { batch: 1, M: rows, N: D, K, transA: false, transB: false, strideA: 0, strideB: 0 },
        `${op}.backward`,
      );
      logits.dispose();
      if (gq) {
        copyRows(
          gqc,
          gq,
          { rows: 1, rowLen: rows * D, srcStride: 0, srcOffset: 0, dstStride: 0, dstOffset: start * D },
          `${op}.backward`,
        );
        gqc.dispose();
      } else {
        result = gqc;
      }
    }
    lse.dispose();
    const gqOut = gq ?? result!;
    const shaped = reshape(gqOut, [R, D]);
    gqOut.dispose();
    return [shaped, dpos, null];
  });
}
