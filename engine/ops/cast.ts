// toFloat: integer tensors (indices, labels, counts) as f32 values. No gradient flows to
// integers, so nothing is recorded.
import castSrc from '../../shaders/cast.wgsl';
import { type Tensor, formatShape } from '../tensor.js';
import { empty } from './alloc.js';

export function toFloat(x: Tensor): Tensor {
  const op = 'toFloat';
  if (x.dtype === 'f32') throw new Error(`toFloat: ${x.describe()} is already f32; use it as it is`);
  x.buffer(op);
  const y = empty(x.rt, x.shape, 'f32', op);
  x.rt.dispatch(x.rt.kernel('cast', castSrc, { T: x.dtype }), {
    params: { n: x.size },
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: x.rt.grid1d(x.size, 256),
    op,
    bytes: x.size * 8,
    shapes: formatShape(x.shape),
  });
  return y;
}
