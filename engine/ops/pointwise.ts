// Elementwise kernels: a unary map y = f(x) and a broadcasting binary map c = f(a, b), each
// specialised by a WGSL expression. The differentiable ops in unary.ts and binary.ts, and the
// backward rules of other ops, are built on these two.
import unarySrc from '../../shaders/unary.wgsl';
import binarySrc from '../../shaders/binary.wgsl';
import fillSrc from '../../shaders/fill.wgsl';
import { type Tensor, formatShape, type Shape } from '../tensor.js';
import { empty, requireF32, sameRuntime, stridesOf, dims8 } from './alloc.js';
import type { Runtime } from '../runtime.js';

export function unaryMap(x: Tensor, expr: string, op: string, alpha = 0, beta = 0, flopsPerElement = 1): Tensor {
  requireF32(op, x);
  const y = empty(x.rt, x.shape, 'f32', op);
  const k = x.rt.kernel('unary', unarySrc, { EXPR: expr });
  x.rt.dispatch(k, {
    params: { n: x.size, alpha, beta },
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: x.rt.grid1d(x.size, 256),
    op,
    flops: x.size * flopsPerElement,
    bytes: x.size * 8,
    shapes: formatShape(x.shape),
  });
  return y;
}

/** The broadcast shape of two shapes, NumPy rules. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast (dimension ${i}: ${da} vs ${db}); sizes must be equal or 1 on each axis (reshape or expand an operand)`,
      );
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const strides = stridesOf(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : strides[i - off]));
}

export function binaryMap(a: Tensor, b: Tensor, expr: string, op: string, flopsPerElement = 1): Tensor {
  requireF32(op, a, b);
  const rt = sameRuntime(op, a, b);
  const outShape = broadcastShapes(a.shape, b.shape, op);
  const c = empty(rt, outShape, 'f32', op);
  const same = a.size === c.size && b.size === c.size;
  const k = rt.kernel('binary', binarySrc, { EXPR: expr, BROADCAST: !same });
  rt.dispatch(k, {
    params: {
      n: c.size,
      rank: outShape.length,
      outShape: dims8(outShape, op),
      aStrides: dims8(broadcastStrides(a.shape, outShape), op),
      bStrides: dims8(broadcastStrides(b.shape, outShape), op),
    },
    buffers: [a.buffer(op), b.buffer(op), c.buffer(op)],
    workgroups: rt.grid1d(c.size, 256),
    op,
    flops: c.size * flopsPerElement,
    bytes: (a.size + b.size + c.size) * 4,
    shapes: `${formatShape(a.shape)} ${formatShape(b.shape)}`,
  });
  return c;
}

export function fillTensor(rt: Runtime, shape: Shape, value: number, op = 'fill'): Tensor {
  const y = empty(rt, shape, 'f32', op);
  const k = rt.kernel('fill', fillSrc);
  rt.dispatch(k, {
    params: { n: y.size, value },
    buffers: [y.buffer(op)],
    workgroups: rt.grid1d(y.size, 256),
    op,
    bytes: y.size * 4,
  });
  return y;
}

/** Sets every element of an existing tensor (in place, outside the tape). */
export function fillInPlace(t: Tensor, value: number, op = 'fill'): void {
  const k = t.rt.kernel('fill', fillSrc);
  t.rt.dispatch(k, {
    params: { n: t.size, value },
    buffers: [t.buffer(op)],
    workgroups: t.rt.grid1d(t.size, 256),
    op,
    bytes: t.size * 4,
  });
}
