// Reductions. Every reduction runs on an [outer, R, inner] view: the reduced axes are made
// adjacent (by a permute when they are not) and summed by one kernel, in two passes when R is
// long and the output small so that enough invocations share the work.
import sumSrc from '../../shaders/reduce_sum.wgsl';
import maxSrc from '../../shaders/reduce_max.wgsl';
import scatterSrc from '../../shaders/scatter_max_grad.wgsl';
import { Tensor, sizeOf, formatShape, type Shape } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, normAxes, requireF32 } from './alloc.js';
import { reshape, permute, broadcastCopy } from './shape.js';
import { affine } from './unary.js';

/** Whether a sum of R terms into `outputs` elements is one pass (each output adds its terms in order from 0). */
export const sumIsOnePass = (outputs: number, R: number): boolean => outputs >= 4096 || R < 2048;

/** The reduction; with `into`, its result is added to `into` (and `into` returned). */
function sumKernel(
  x: Tensor,
  outer: number,
  R: number,
  inner: number,
  scale: number,
  op: string,
  into: Tensor | null = null,
): Tensor {
  const rt = x.rt;
  const run = (src: Tensor, reduce: number, chunk: number, s: number): Tensor => {
    const chunks = Math.ceil(reduce / chunk);
    const last = chunks === 1;
    const y = into && last ? into : empty(rt, [outer * chunks * inner], 'f32', op);
    const k = rt.kernel('reduce_sum', sumSrc, y === into ? { ACCUMULATE: true } : {});
    rt.dispatch(k, {
      params: { outer, reduce, inner, scale: s, chunk, chunks },
      buffers: [src.buffer(op), y.buffer(op)],
      workgroups: rt.grid1d(y.size, 256),
      op,
      flops: outer * reduce * inner,
      bytes: (outer * reduce * inner + y.size) * 4,
      shapes: `[${outer}, ${reduce}, ${inner}]`,
    });
    return y;
  };
  if (sumIsOnePass(outer * inner, R)) return run(x, R, R, scale);
  const chunk = Math.ceil(Math.sqrt(R));
  const partial = run(x, R, chunk, 1);
  const y = run(partial, Math.ceil(R / chunk), Math.ceil(R / chunk), scale);
  partial.dispose();
  return y;
}

function keptShape(shape: Shape, axes: number[], keepDims: boolean): number[] {
  return keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** Sum (times `scale`) over axes; the engine behind sum and mean. */
function reduceSum(
  x: Tensor,
  axesIn: number | readonly number[] | undefined,
  keepDims: boolean,
  mean: boolean,
  op: string,
): Tensor {
  requireF32(op, x);
  const axes = normAxes(axesIn, x.rank, op);
  const R = sizeOf(axes.map((a) => x.shape[a]));
  const scale = mean ? 1 / R : 1;
  const outShape = keptShape(x.shape, axes, keepDims);
  const contiguous = axes.length === 0 || axes[axes.length - 1] - axes[0] === axes.length - 1;
  let y: Tensor;
  if (contiguous) {
    const outer = sizeOf(x.shape.slice(0, axes[0] ?? 0));
    const inner = axes.length ? sizeOf(x.shape.slice(axes[axes.length - 1] + 1)) : 1;
    y = sumKernel(x, outer, R, inner, scale, op);
  } else {
    const kept = [...Array(x.rank).keys()].filter((a) => !axes.includes(a));
    const moved = permute(x, [...kept, ...axes]);
    y = sumKernel(moved, x.size / R, R, 1, scale, op);
    moved.dispose();
  }
  const out = reshapeRaw(y, outShape);
  return record(out, op, [x], (g) => {
    const ones = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    // Backward rules run without a tape, so the plain broadcast serves (expandTo's rule would
    // need this module back).
    const expanded = broadcastCopy(reshape(g, ones), x.shape, `${op}.backward`);
    return [mean ? affine(expanded, scale, 0, `${op}.backward`) : expanded];
  });
}

/** Re-labels a freshly made tensor's shape without recording a node (it has none yet). */
function reshapeRaw(t: Tensor, shape: Shape): Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  t.storage.retain();
  const v = new Tensor(t.storage, shape, t.dtype);
  t.dispose();
  return v;
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceSum(x, axes, keepDims, false, 'sum');
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceSum(x, axes, keepDims, true, 'mean');
}

/**
 * Adds the sum of x over its first axis to `into` (x.size / x.shape[0] elements) in the one
 * reduction kernel, off the tape: how a backward rule accumulates a gradient summed from
 * partials straight into a parameter's .grad.
 */
export function sumFirstAxisInto(x: Tensor, into: Tensor, op = 'sum'): void {
  requireF32(op, x, into);
  const R = x.shape[0] ?? 1;
  if (x.rank < 1 || into.size * R !== x.size)
    throw new Error(`${op}: cannot add the sum over the first axis of ${x.describe()} to ${into.describe()}`);
  sumKernel(x, 1, R, into.size, 1, op, into);
}

/** Max over one axis (all elements when axis is undefined), with the index of the first maximum. */
export function maxWithIndex(
  x: Tensor,
  axis?: number,
  keepDims = false,
  op = 'max',
): { values: Tensor; indices: Tensor } {
  requireF32(op, x);
  if (x.size === 0) throw new Error(`${op}: cannot take the max of an empty tensor ${x.describe()}`);
  const flat = axis === undefined;
  const a = flat ? 0 : normAxes(axis, x.rank, op)[0];
  const shape = flat ? [x.size] : x.shape;
  const outer = sizeOf(shape.slice(0, a));
  const R = shape[a];
  const inner = sizeOf(shape.slice(a + 1));
  const rt = x.rt;
  const values = empty(rt, [outer * inner], 'f32', op);
  const indices = empty(rt, [outer * inner], 'i32', op);
  rt.dispatch(rt.kernel('reduce_max', maxSrc), {
    params: { outer, reduce: R, inner },
    buffers: [x.buffer(op), values.buffer(op), indices.buffer(op)],
    workgroups: rt.grid1d(outer * inner, 256),
    op,
    flops: x.size,
    bytes: (x.size + 2 * outer * inner) * 4,
    shapes: formatShape(x.shape),
  });
  const outShape = flat ? (keepDims ? x.shape.map(() => 1) : []) : keptShape(x.shape, [a], keepDims);
  const v = reshapeRaw(values, outShape);
  const idx = reshapeRaw(indices, outShape);
  record(v, op, [x], (g) => {
    const dx = empty(rt, x.shape, 'f32', `${op}.backward`);
    rt.dispatch(rt.kernel('scatter_max_grad', scatterSrc), {
      params: { outer, reduce: R, inner },
      buffers: [g.buffer(op), idx.buffer(op), dx.buffer(op)],
      workgroups: rt.grid1d(x.size, 256),
      op: `${op}.backward`,
      bytes: (x.size + 2 * outer * inner) * 4,
    });
    return [dx];
  });
  return { values: v, indices: idx };
}

export function max(x: Tensor, axis?: number, keepDims = false): Tensor {
  const { values, indices } = maxWithIndex(x, axis, keepDims);
  if (!values.node) indices.dispose();
  return values;
}
