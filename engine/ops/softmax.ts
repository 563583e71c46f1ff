// logSoftmax along an axis, fused: per line the max, the log-sum-exp and the shifted output in
// one kernel; the backward needs only the output: dx = g - softmax * sum(g).
import lsmSrc from '../../shaders/log_softmax.wgsl';
import lsmGradSrc from '../../shaders/log_softmax_grad.wgsl';
import { type Tensor, formatShape, sizeOf } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, normAxes, requireF32 } from './alloc.js';

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const op = 'logSoftmax';
  requireF32(op, x);
  const a = normAxes(axis, x.rank, op)[0];
  x.buffer(op);
  const rt = x.rt;
  const params = { outer: sizeOf(x.shape.slice(0, a)), reduce: x.shape[a], inner: sizeOf(x.shape.slice(a + 1)) };
  const lines = params.outer * params.inner;
  const y = empty(rt, x.shape, 'f32', op);
  rt.dispatch(rt.kernel('log_softmax', lsmSrc), {
    params,
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: rt.grid1d(lines, 256),
    op,
    flops: 6 * x.size,
    bytes: 16 * x.size,
    shapes: `${formatShape(x.shape)} axis ${a}`,
  });
  return record(y, op, [x], (g) => {
    const dx = empty(rt, x.shape, 'f32', `${op}.backward`);
    rt.dispatch(rt.kernel('log_softmax_grad', lsmGradSrc), {
      params,
      buffers: [y.buffer(op), g.buffer(op), dx.buffer(op)],
      workgroups: rt.grid1d(lines, 256),
      op: `${op}.backward`,
      flops: 6 * x.size,
      bytes: 16 * x.size,
      shapes: `${formatShape(x.shape)} axis ${a}`,
    });
    return [dx];
  });
}
