// Slicing along one axis, x[..., start:end, ...], as a copy. Any tensor viewed as
// [outer, dim * inner] rows makes a slice a block of contiguous row pieces, so one row-copy
// kernel serves slice, its backward, and concat (which writes each input into its range).
import copySrc from '../../shaders/copy_rows.wgsl';
import { type Tensor, formatShape, sizeOf } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, normAxes } from './alloc.js';
import { fillTensor } from './pointwise.js';
import type { LiveValue } from '../uniforms.js';

export interface RowCopy {
  rows: number;
  rowLen: number;
  srcStride: number;
  srcOffset: number;
  dstStride: number;
  /** Live in a captured step where it moves from step to step (a queue position). */
  dstOffset: number | LiveValue;
}

/** dst[r * dstStride + dstOffset + j] = src[r * srcStride + srcOffset + j] for r < rows, j < rowLen. */
export function copyRows(src: Tensor, dst: Tensor, c: RowCopy, op: string): void {
  const rt = src.rt;
  rt.dispatch(rt.kernel('copy_rows', copySrc, { T: src.dtype }), {
    params: { ...c },
    buffers: [src.buffer(op), dst.buffer(op)],
    workgroups: rt.grid1d(c.rows * c.rowLen, 256),
    op,
    bytes: c.rows * c.rowLen * 8,
    shapes: `${formatShape(src.shape)} -> ${formatShape(dst.shape)}`,
  });
}

export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const op = 'slice';
  const a = normAxes(axis, x.rank, op)[0];
  const dim = x.shape[a];
  const s = start < 0 ? start + dim : start;
  const e = end === undefined ? dim : end < 0 ? end + dim : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > dim || s > e) {
    throw new Error(
      `slice: range [${start}, ${end ?? dim}) does not fit axis ${a} (size ${dim}) of ${x.describe()}; use 0 <= start <= end <= ${dim} (negative values count from the end)`,
    );
  }
  x.buffer(op);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const y = empty(
    x.rt,
    x.shape.map((d, i) => (i === a ? e - s : d)),
    x.dtype,
    op,
  );
  const rowLen = (e - s) * inner;
  copyRows(
    x,
    y,
    { rows: outer, rowLen, srcStride: dim * inner, srcOffset: s * inner, dstStride: rowLen, dstOffset: 0 },
    op,
  );
  return record(y, op, [x], (g) => {
    const dx = fillTensor(x.rt, x.shape, 0, 'slice.backward');
    copyRows(
      g,
      dx,
      { rows: outer, rowLen, srcStride: rowLen, srcOffset: 0, dstStride: dim * inner, dstOffset: s * inner },
      'slice.backward',
    );
    return [dx];
  });
}
