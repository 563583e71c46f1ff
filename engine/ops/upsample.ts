// Bilinear resize of [N, C, H, W] to [N, C, OH, OW] with the semantics of PyTorch's
// F.interpolate(x, size=(OH, OW), mode='bilinear', align_corners=...), forward and backward.
//
// The interpolation is separable and the same for every plane, so the host computes it once per
// axis (in float32, as PyTorch's CPU kernel does): for each output row/column its two source
// taps and weights. The backward pass inverts those tables into per-input lists, so each input
// element gathers its gradient in a fixed order: deterministic, no float atomics.
import fwdSrc from '../../shaders/upsample_bilinear.wgsl';
import gradSrc from '../../shaders/upsample_bilinear_grad.wgsl';
import type { Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, fromArray, requireF32 } from './alloc.js';
import { perPlaneChunk } from './maxpool.js';

const f = Math.fround;

interface AxisTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float32Array;
  w1: Float32Array;
}

/** Source taps of each output index along one axis (PyTorch's area_pixel_compute_source_index). */
export function bilinearTaps(inSize: number, outSize: number, alignCorners: boolean): AxisTaps {
  const scale = alignCorners ? (outSize > 1 ? f((inSize - 1) / (outSize - 1)) : 0) : f(inSize / outSize);
  const t: AxisTaps = {
    i0: new Int32Array(outSize),
    i1: new Int32Array(outSize),
    w0: new Float32Array(outSize),
    w1: new Float32Array(outSize),
  };
  for (let o = 0; o < outSize; o++) {
    let src = alignCorners ? f(scale * o) : f(f(scale * f(o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(Math.max(f(src - i0), 0), 1);
    t.i0[o] = i0;
    t.i1[o] = i0 < inSize - 1 ? i0 + 1 : i0;
    t.w1[o] = lambda;
    t.w0[o] = f(1 - lambda);
  }
  return t;
}

// [i0, i1, bits(w0), bits(w1)] per output row, then per output column.
function forwardTable(rows: AxisTaps, cols: AxisTaps): Uint32Array {
  const n = rows.i0.length + cols.i0.length;
  const words = new Uint32Array(4 * n);
  const bits = new Float32Array(words.buffer);
  let k = 0;
  for (const t of [rows, cols]) {
    for (let o = 0; o < t.i0.length; o++, k++) {
      words[4 * k] = t.i0[o];
      words[4 * k + 1] = t.i1[o];
      bits[4 * k + 2] = t.w0[o];
      bits[4 * k + 3] = t.w1[o];
    }
  }
  return words;
}

// Per input row and column, the outputs that read it and with what weight (both taps merged
// when they coincide at the border). Layout in upsample_bilinear_grad.wgsl.
function backwardTable(rows: AxisTaps, IH: number, cols: AxisTaps, IW: number): Uint32Array {
  const lists = [rows, cols].map((t, axis) => {
    const size = axis === 0 ? IH : IW;
    const per: [number, number][][] = Array.from({ length: size }, () => []);
    for (let o = 0; o < t.i0.length; o++) {
      const add = (i: number, w: number): void => {
        const l = per[i];
        if (l.length && l[l.length - 1][0] === o) l[l.length - 1][1] = f(l[l.length - 1][1] + w);
        else l.push([o, w]);
      };
      add(t.i0[o], t.w0[o]);
      add(t.i1[o], t.w1[o]);
    }
    return per;
  });
  const entries = lists.reduce((s, per) => s + per.reduce((a, l) => a + l.length, 0), 0);
  const words = new Uint32Array(IH + IW + 2 + 2 * entries);
  const bits = new Float32Array(words.buffer);
  let at = IH + IW + 2;
  let slot = 0;
  for (const per of lists) {
    for (const l of per) {
      words[slot++] = at;
      for (const [o, w] of l) {
        words[at] = o;
        bits[at + 1] = w;
        at += 2;
      }
    }
    words[slot++] = at;
  }
  return words;
}

export function bilinearUpsample2d(
  x: Tensor,
  size: readonly [number, number] | readonly number[],
  alignCorners = false,
): Tensor {
  const op = 'bilinearUpsample2d';
  requireF32(op, x);
  if (x.rank !== 4)
    throw new Error(`${op}: expects an input [N, C, H, W], got ${x.describe()}; add the missing axes with reshape`);
  if (size.length !== 2 || size.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`${op}: size must be two positive integers [OH, OW], got [${size.join(', ')}]`);
  }
  const [N, C, IH, IW] = x.shape;
  const [OH, OW] = size;
  if (IH < 1 || IW < 1) throw new Error(`${op}: input ${x.describe()} has an empty spatial size`);
  const rt = x.rt;
  const rows = bilinearTaps(IH, OH, alignCorners);
  const cols = bilinearTaps(IW, OW, alignCorners);
  const planes = N * C;
  const shapes = `${x.describe()} -> ${OH}x${OW}${alignCorners ? ' (align corners)' : ''}`;
  const params = { IH, IW, OH, OW };
  const y = empty(rt, [N, C, OH, OW], 'f32', op);
  const taps = fromArray(rt, forwardTable(rows, cols), [4 * (OH + OW)], 'u32', op);
  const fwd = rt.kernel('upsample_bilinear', fwdSrc);
  perPlaneChunk(planes, (planeBase, count) =>
    rt.dispatch(fwd, {
      params: { ...params, planeBase },
      buffers: [x.buffer(op), taps.buffer(op), y.buffer(op)],
      workgroups: [Math.ceil(OW / 8), Math.ceil(OH / 8), count],
      op,
      flops: 8 * count * OH * OW,
      bytes: 4 * count * (4 * OH * OW + OH * OW),
      shapes,
    }),
  );
  taps.dispose();
  return record(y, op, [x], (g) => {
    const bop = `${op}.backward`;
    const dx = empty(rt, x.shape, 'f32', bop);
    const table = backwardTable(rows, IH, cols, IW);
    const lists = fromArray(rt, table, [table.length], 'u32', bop);
    const grad = rt.kernel('upsample_bilinear_grad', gradSrc);
    perPlaneChunk(planes, (planeBase, count) =>
      rt.dispatch(grad, {
        params: { ...params, planeBase },
        buffers: [g.buffer(bop), lists.buffer(bop), dx.buffer(bop)],
        workgroups: [Math.ceil(IW / 8), Math.ceil(IH / 8), count],
        op: bop,
        flops: 8 * count * OH * OW,
        bytes: 4 * count * (4 * OH * OW + IH * IW),
        shapes,
      }),
    );
    lists.dispose();
    return [dx];
  });
}
