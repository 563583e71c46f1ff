// Casts between dtypes. toFloat: integer tensors (indices, labels, counts) and f16 tensors as f32
// values. toHalf: f32 values rounded to f16 (the operands of the mixed-precision kernels). No
// gradient flows through either (integers have none; f16 tensors are kernel operands that the
// autocast ops make and consume themselves).
import castSrc from '../../shaders/cast.wgsl';
import toHalfSrc from '../../shaders/to_half.wgsl';
import { type Tensor, formatShape } from '../tensor.js';
import { empty, requireF32 } from './alloc.js';

export function toFloat(x: Tensor): Tensor {
  const op = 'toFloat';
  if (x.dtype === 'f32') throw new Error(`toFloat: ${x.describe()} is already f32; use it as it is`);
  x.buffer(op);
  const y = empty(x.rt, x.shape, 'f32', op);
  const half = x.dtype === 'f16';
  x.rt.dispatch(x.rt.kernel('cast', castSrc, { T: x.dtype }), {
    params: { n: x.size },
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: x.rt.grid1d(x.size, 256),
    op,
    bytes: x.size * (half ? 6 : 8),
    shapes: formatShape(x.shape),
  });
  return y;
}

/** f16(x * scale), rounded to nearest; needs the adapter's shader-f16 feature. */
export function toHalf(x: Tensor, scale = 1): Tensor {
  const op = 'toHalf';
  requireF32(op, x);
  requireHalf(x.rt.profile.features.shaderF16, op);
  const y = empty(x.rt, x.shape, 'f16', op);
  x.rt.dispatch(x.rt.kernel('to_half', toHalfSrc), {
    params: { n: x.size, scale },
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: x.rt.grid1d(Math.ceil(x.size / 2), 256),
    op,
    bytes: x.size * 6,
    shapes: formatShape(x.shape),
  });
  return y;
}

/** Throws a message naming the missing feature unless the device has shader-f16. */
export function requireHalf(hasF16: boolean, op: string): void {
  if (!hasF16)
    throw new Error(
      `${op}: f16 needs the adapter's shader-f16 feature, which this device does not offer; use f32 (precision 'f32')`,
    );
}
