// index_select: picks whole slices of x along an axis by a 1-D i32 index (e.g. to permute a
// batch). It is gather with the index broadcast over the other axes (stride 0 there), so it
// shares gather's kernels, including the deterministic backward.
import type { Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { normAxes, sameRuntime } from './alloc.js';
import { gatherForward, gatherBackward, requireIndex } from './gather.js';

export function indexSelect(x: Tensor, index: Tensor, axis: number): Tensor {
  const op = 'indexSelect';
  requireIndex(op, index);
  sameRuntime(op, x, index);
  if (index.rank !== 1)
    throw new Error(`indexSelect: the index must be 1-D, got ${index.describe()}; reshape it to [${index.size}]`);
  const a = normAxes(axis, x.rank, op)[0];
  x.buffer(op);
  const outShape = x.shape.map((d, i) => (i === a ? index.size : d));
  const idxStrides = x.shape.map((_, i) => (i === a ? 1 : 0));
  const y = gatherForward(x, index, a, outShape, idxStrides, op);
  return record(y, op, [x], (g) => [gatherBackward(x.shape, g, index, a, idxStrides, 'indexSelect.backward')]);
}
