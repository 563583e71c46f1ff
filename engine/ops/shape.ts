// Shape ops: reshape is a view (no copy); permute/transpose copy through permuted strides;
// broadcastCopy reads with zero strides (the tape-free half of expandTo, see broadcast.ts).
import permuteSrc from '../../shaders/permute.wgsl';
import { Tensor, formatShape, sizeOf, type Shape } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, stridesOf, dims8, normAxes } from './alloc.js';

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const inferred = shape.length - known.length;
  if (inferred > 1) throw new Error(`reshape: only one dimension may be -1, got ${formatShape(shape)}`);
  const rest = sizeOf(known);
  const full = shape.map((d) => (d === -1 ? (rest === 0 ? 0 : x.size / rest) : d));
  if (sizeOf(full) !== x.size || full.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`reshape: cannot view ${x.describe()} (${x.size} elements) as ${formatShape(shape)}`);
  }
  x.buffer('reshape');
  x.storage.retain();
  const y = new Tensor(x.storage, full, x.dtype);
  return record(y, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

function gatherStrided(x: Tensor, outShape: Shape, inStrides: number[], op: string): Tensor {
  const y = empty(x.rt, outShape, x.dtype, op);
  const k = x.rt.kernel('permute', permuteSrc, { T: x.dtype });
  x.rt.dispatch(k, {
    params: { n: y.size, rank: outShape.length, outShape: dims8(outShape, op), inStrides: dims8(inStrides, op) },
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: x.rt.grid1d(y.size, 256),
    op,
    bytes: y.size * 8,
    shapes: `${formatShape(x.shape)} -> ${formatShape(outShape)}`,
  });
  return y;
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const axes = perm.map((a) => (a < 0 ? a + x.rank : a));
  if (axes.length !== x.rank || normAxes(axes, x.rank, 'permute').some((a, i) => a !== i)) {
    throw new Error(`permute: [${perm.join(', ')}] is not a permutation of the ${x.rank} axes of ${x.describe()}`);
  }
  const strides = stridesOf(x.shape);
  const y = gatherStrided(
    x,
    axes.map((a) => x.shape[a]),
    axes.map((a) => strides[a]),
    'permute',
  );
  const inverse = new Array<number>(axes.length);
  axes.forEach((a, i) => (inverse[a] = i));
  return record(y, 'permute', [x], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const [a, b] = [dim0, dim1].map((d) => (d < 0 ? d + x.rank : d));
  const perm = [...Array(x.rank).keys()];
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return permute(x, perm);
}

/** x broadcast to `shape` (NumPy rules), materialised, with no gradient rule: for ops and
 *  backward rules (which run without a tape); expandTo (broadcast.ts) is the differentiable one. */
export function broadcastCopy(x: Tensor, shape: Shape, op = 'expand'): Tensor {
  const off = shape.length - x.rank;
  const strides = stridesOf(x.shape);
  const inStrides = shape.map((d, i) => {
    const xd = i < off ? 1 : x.shape[i - off];
    if (xd !== d && xd !== 1) throw new Error(`${op}: ${x.describe()} cannot be broadcast to ${formatShape(shape)}`);
    return xd === 1 ? 0 : strides[i - off];
  });
  return gatherStrided(x, shape, inStrides, op);
}
