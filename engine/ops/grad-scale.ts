// Gradients as f16 operands of the mixed-precision kernels. A gradient's values are often far
// below f16's normal range (2^-14), so it is cast scaled by a power of two chosen on the GPU from
// its own largest magnitude (per tensor, in the same step: no loss-scale state, no skipped
// steps, nothing read back); the consuming kernel multiplies its f32 result by 1/s, exactly
// (lib/grad_scale.wgsl). Costs two passes over the gradient (max, then the cast) and a fill.
import amaxSrc from '../../shaders/grad_amax.wgsl';
import toHalfScaledSrc from '../../shaders/to_half_scaled.wgsl';
import { type Tensor, formatShape } from '../tensor.js';
import { empty, requireF32 } from './alloc.js';
import { requireHalf } from './cast.js';
import { fillInPlace } from './pointwise.js';

export interface ScaledHalf {
  /** f16(g * s). */
  half: Tensor;
  /** One u32: the bits of max |g|, from which kernels derive s and 1/s (lib/grad_scale.wgsl). */
  amax: Tensor;
}

/** Largest workgroup count of the max pass (each strides over the rest). */
const AMAX_WORKGROUPS = 256;

export function scaledHalf(g: Tensor): ScaledHalf {
  const op = 'scaledHalf';
  requireF32(op, g);
  const rt = g.rt;
  requireHalf(rt.profile.features.shaderF16, op);
  const shapes = formatShape(g.shape);
  const amax = empty(rt, [1], 'u32', op);
  fillInPlace(amax, 0, op);
  const groups = Math.max(1, Math.min(AMAX_WORKGROUPS, Math.ceil(g.size / 4096)));
  rt.dispatch(rt.kernel('grad_amax', amaxSrc), {
    params: { n: g.size, stride: groups * 256 },
    buffers: [g.buffer(op), amax.buffer(op)],
    workgroups: [groups, 1, 1],
    op,
    bytes: g.size * 4,
    shapes,
  });
  const half = empty(rt, g.shape, 'f16', op);
  rt.dispatch(rt.kernel('to_half_scaled', toHalfScaledSrc), {
    params: { n: g.size },
    buffers: [g.buffer(op), amax.buffer(op), half.buffer(op)],
    workgroups: rt.grid1d(Math.ceil(g.size / 2), 256),
    op,
    bytes: g.size * 6,
    shapes,
  });
  return { half, amax };
}
