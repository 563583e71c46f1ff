// Concatenation along an axis: each input is copied into its range of the output (viewed as
// [outer, total * inner] rows); the backward pass slices the gradient back into the ranges.
import { type Tensor, formatShape, sizeOf } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, normAxes, sameRuntime } from './alloc.js';
import { copyRows, slice } from './slice.js';

export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  const op = 'concat';
  if (tensors.length === 0) throw new Error('concat: got an empty list; pass at least one tensor');
  const first = tensors[0];
  const rt = sameRuntime(op, ...tensors);
  const a = normAxes(axis, first.rank, op)[0];
  for (const t of tensors) {
    t.buffer(op);
    const fits = t.rank === first.rank && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!fits || t.dtype !== first.dtype) {
      throw new Error(
        `concat: ${t.describe()} does not match ${first.describe()} along axis ${a}: ` +
          `all tensors need the same dtype, rank and sizes except on the concatenated axis (${tensors.map((x) => formatShape(x.shape)).join(', ')})`,
      );
    }
  }
  const outer = sizeOf(first.shape.slice(0, a));
  const inner = sizeOf(first.shape.slice(a + 1));
  const total = tensors.reduce((n, t) => n + t.shape[a], 0);
  const y = empty(
    rt,
    first.shape.map((d, i) => (i === a ? total : d)),
    first.dtype,
    op,
  );
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    offsets.push(off);
    const rowLen = t.shape[a] * inner;
    copyRows(
      t,
      y,
      { rows: outer, rowLen, srcStride: rowLen, srcOffset: 0, dstStride: total * inner, dstOffset: off * inner },
      op,
    );
    off += t.shape[a];
  }
  return record(y, op, [...tensors], (g) =>
    tensors.map((t, k) => (t.requiresGrad ? slice(g, a, offsets[k], offsets[k] + t.shape[a]) : null)),
  );
}
