// torch.gather along an axis: out has the shape of the i32 index and
// out[c] = x[c with c[axis] replaced by index[c]]. The kernels are shared with indexSelect.
// Backward: no float atomics; each element of x sums the gradients of the index entries that
// point at it (see shaders/gather_grad.wgsl), which is deterministic and costs
// x.size * out.shape[axis] reads: right for the short axes gathered here (a batch, a grid of
// positions); a very long gathered axis would want a sort-based scatter instead.
import gatherSrc from '../../shaders/gather.wgsl';
import gatherGradSrc from '../../shaders/gather_grad.wgsl';
import { type Tensor, formatShape, type Shape } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, dims8, normAxes, sameRuntime, stridesOf } from './alloc.js';

/** Records y = x gathered along `axis`; `idxStrides` maps output coordinates to the index. */
export function gatherForward(
  x: Tensor,
  index: Tensor,
  axis: number,
  outShape: Shape,
  idxStrides: number[],
  op: string,
): Tensor {
  const rt = x.rt;
  const y = empty(rt, outShape, x.dtype, op);
  rt.dispatch(rt.kernel('gather', gatherSrc, { T: x.dtype }), {
    params: {
      n: y.size,
      rank: x.rank,
      axis,
      axisLen: x.shape[axis],
      outShape: dims8(outShape, op),
      xStrides: dims8(stridesOf(x.shape), op),
      idxStrides: dims8(idxStrides, op),
    },
    buffers: [x.buffer(op), index.buffer(op), y.buffer(op)],
    workgroups: rt.grid1d(y.size, 256),
    op,
    bytes: y.size * 12,
    shapes: `${formatShape(x.shape)} by ${formatShape(index.shape)}`,
  });
  return y;
}

/** The gradient of gatherForward with respect to x, for an output gradient g. */
export function gatherBackward(
  xShape: Shape,
  g: Tensor,
  index: Tensor,
  axis: number,
  idxStrides: number[],
  op: string,
): Tensor {
  const rt = g.rt;
  const dx = empty(rt, xShape, 'f32', op);
  rt.dispatch(rt.kernel('gather_grad', gatherGradSrc), {
    params: {
      n: dx.size,
      rank: xShape.length,
      axis,
      outAxisLen: g.shape[axis],
      xShape: dims8(xShape, op),
      outShape: dims8(g.shape, op),
      outStrides: dims8(stridesOf(g.shape), op),
      idxStrides: dims8(idxStrides, op),
    },
    buffers: [g.buffer(op), index.buffer(op), dx.buffer(op)],
    workgroups: rt.grid1d(dx.size, 256),
    op,
    flops: dx.size * g.shape[axis],
    bytes: dx.size * (4 + 8 * g.shape[axis]),
    shapes: `${formatShape(g.shape)} -> ${formatShape(xShape)}`,
  });
  return dx;
}

export function requireIndex(op: string, index: Tensor): void {
  if (index.dtype !== 'i32')
    throw new Error(
      `${op}: indices must be an i32 tensor, got ${index.describe()}; create them with tensor(values, shape, 'i32')`,
    );
}

export function gather(x: Tensor, index: Tensor, axis: number): Tensor {
  const op = 'gather';
  requireIndex(op, index);
  sameRuntime(op, x, index);
  const a = normAxes(axis, x.rank, op)[0];
  if (index.rank !== x.rank || index.shape.some((d, i) => i !== a && d > x.shape[i])) {
    throw new Error(
      `gather: index ${index.describe()} does not fit ${x.describe()} along axis ${a}: ` +
        `the index needs the same rank and sizes no larger than x's on every other axis`,
    );
  }
  x.buffer(op);
  const strides = stridesOf(index.shape);
  const y = gatherForward(x, index, a, index.shape, strides, op);
  return record(y, op, [x], (g) => [gatherBackward(x.shape, g, index, a, strides, 'gather.backward')]);
}
