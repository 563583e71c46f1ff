// The weight re-laid for the implicit-GEMM kernels' aligned vec4 loads along the output
// dimension m, zero-padded: [cin, kh, kw, mp] for the classic kernels, or tap-major
// [kh, kw, cinp, mp] with cin padded to cinp for the tiled ones (trans: cin = o, m = c, for dx).
// A weight inside a parameter store (a model's) comes from the store's weight pack, refreshed
// once per change of the store (weight-pack.ts); any other weight is re-laid per call.
// dtype 'f16': the mixed-precision operand of the tiled kernels, rounded once here.
import relayoutSrc from '../../../shaders/conv2d/relayout.wgsl';
import { type Tensor, formatShape, storageBytes } from '../../tensor.js';
import { storeOwning } from '../../flat.js';
import { empty } from '../alloc.js';
import type { ConvGeometry } from './geometry.js';
import { weightPackOf, halfDefines, type RelaidDType } from './weight-pack.js';

export interface RelayoutShape {
  /** m padded to a multiple of the kernel's tile rows. */
  mp: number;
  /** Tap-major with cin padded to this (the tiled kernels); 0: the classic [cin, kh, kw, mp]. */
  cinp: number;
}

/** The re-laid weight; the caller disposes it after its last use. */
export function relayoutWeight(
  w: Tensor,
  g: ConvGeometry,
  trans: boolean,
  { mp, cinp }: RelayoutShape,
  op: string,
  dtype: RelaidDType = 'f32',
): Tensor {
  // The shaders write two elements per invocation (whole words for f16).
  if (mp % 2 !== 0) throw new Error(`${op}: re-laid weight rows padded to ${mp}, which is odd; pad to an even count`);
  const rt = w.rt;
  const ref = w.buffer(op);
  const store = storeOwning(ref.buffer);
  const packed = store ? weightPackOf(rt, store, dtype).get(ref.offset / 4, { g, trans, mp, cinp }, op) : null;
  if (packed) return packed;
  const cin = cinp || (trans ? g.O : g.C);
  const total = cin * g.KH * g.KW * mp;
  const a = empty(rt, [total], dtype, op);
  rt.dispatch(rt.kernel('conv2d_relayout', relayoutSrc, { TRANS: trans, TAP_MAJOR: cinp > 0, ...halfDefines(dtype) }), {
    params: { O: g.O, C: g.C, KHW: g.KH * g.KW, MP: mp, total, CINP: cinp },
    buffers: [ref, a.buffer(op)],
    workgroups: rt.grid1d(total / 2, 256),
    op,
    bytes: 4 * total + storageBytes(total, dtype),
    shapes: formatShape([g.O, g.C, g.KH, g.KW]),
  });
  return a;
}
