// In-place updates outside the tape: y = beta * y + alpha * x, and copies between tensors.
// Used for gradient accumulation, the momentum encoder's EMA and optimiser-side bookkeeping.
import axpySrc from '../../shaders/axpy.wgsl';
import type { Tensor } from '../tensor.js';
import { sameRuntime } from './alloc.js';

export function axpyInPlace(y: Tensor, x: Tensor, alpha: number, beta: number, op = 'axpy'): void {
  const rt = sameRuntime(op, y, x);
  if (y.size !== x.size) throw new Error(`${op}: ${y.describe()} and ${x.describe()} differ in size`);
  rt.dispatch(rt.kernel('axpy', axpySrc), {
    params: { n: y.size, alpha, beta },
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: rt.grid1d(y.size, 256),
    op,
    flops: 3 * y.size,
    bytes: 12 * y.size,
  });
}

/** Copies x's values into y (same number of elements). */
export function copyInto(y: Tensor, x: Tensor, op = 'copy'): void {
  sameRuntime(op, y, x);
  if (y.size !== x.size) throw new Error(`${op}: cannot copy ${x.describe()} into ${y.describe()}`);
  const src = x.buffer(op);
  const dst = y.buffer(op);
  y.rt.copyBuffer(src.buffer, src.offset, dst.buffer, dst.offset, x.size * 4);
}
