// l2Normalize, torch.nn.functional.normalize(p=2): y = x / max(||x||, eps) along an axis, as one
// fused kernel each way; the backward recomputes the norm from x rather than saving it.
import normSrc from '../../shaders/l2_normalize.wgsl';
import normGradSrc from '../../shaders/l2_normalize_grad.wgsl';
import { type Tensor, formatShape, sizeOf } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, normAxes, requireF32 } from './alloc.js';

export function l2Normalize(x: Tensor, axis: number, eps = 1e-12): Tensor {
  const op = 'l2Normalize';
  requireF32(op, x);
  if (!(eps > 0)) throw new Error(`l2Normalize: eps must be positive, got ${eps}`);
  const a = normAxes(axis, x.rank, op)[0];
  x.buffer(op);
  const rt = x.rt;
  const params = { outer: sizeOf(x.shape.slice(0, a)), reduce: x.shape[a], inner: sizeOf(x.shape.slice(a + 1)), eps };
  const lines = params.outer * params.inner;
  const y = empty(rt, x.shape, 'f32', op);
  rt.dispatch(rt.kernel('l2_normalize', normSrc), {
    params,
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: rt.grid1d(lines, 256),
    op,
    flops: 3 * x.size,
    bytes: 12 * x.size,
    shapes: `${formatShape(x.shape)} axis ${a}`,
  });
  return record(y, op, [x], (g) => {
    const dx = empty(rt, x.shape, 'f32', `${op}.backward`);
    rt.dispatch(rt.kernel('l2_normalize_grad', normGradSrc), {
      params,
      buffers: [x.buffer(op), g.buffer(op), dx.buffer(op)],
      workgroups: rt.grid1d(lines, 256),
      op: `${op}.backward`,
      flops: 7 * x.size,
      bytes: 20 * x.size,
      shapes: `${formatShape(x.shape)} axis ${a}`,
    });
    return [dx];
  });
}
