// Convolutions whose outputs have only a few pixels per image (deep layers at small input
// sizes: 4x4, 2x2 maps) as single GEMMs on matmul.ts with the batch folded into the columns,
// through an explicit im2col (shaders/conv2d/im2col.wgsl). The implicit core tiles one row of columns
// per lane, so a 2-pixel row idles half of a 4-column tile, and the per-image GEMMs of the
// 1x1 path get a K of a few pixels; here every product has N * OH * OW columns (or, for the
// weight gradient, that long a K), and the copies are small because the maps are.
import src from '../../../shaders/conv2d/im2col.wgsl';
import type { Tensor } from '../../tensor.js';
import { formatShape } from '../../tensor.js';
import type { ConvGeometry } from './geometry.js';
import { empty } from '../alloc.js';
import { gemm } from '../matmul.js';
import { addBiasInPlace, reshapeOwned } from './pointwise.js';

const OP = 'conv2d';

type Layout = Pick<
  ConvGeometry,
  'N' | 'C' | 'H' | 'W' | 'KH' | 'KW' | 'SH' | 'SW' | 'PH' | 'PW' | 'DH' | 'DW' | 'OH' | 'OW'
>;

/** Columns of the folded products: N * OH * OW, rounded up to a multiple of 4 (the sg8 matmul's). */
const foldedColumns = (g: ConvGeometry): number => Math.ceil((g.N * g.OH * g.OW) / 4) * 4;

/** The 1x1 stride-1 layout under which im2col maps [N, M, OH, OW] to [M, NP4] and col2im back. */
const flat = (g: ConvGeometry, M: number): Layout => ({
  N: g.N,
  C: M,
  H: g.OH,
  W: g.OW,
  KH: 1,
  KW: 1,
  SH: 1,
  SW: 1,
  PH: 0,
  PW: 0,
  DH: 1,
  DW: 1,
  OH: g.OH,
  OW: g.OW,
});

function move(t: Tensor, col2im: boolean, l: Layout, NP4: number, op: string): Tensor {
  const rt = t.rt;
  const shape = col2im ? [l.N, l.C, l.H, l.W] : [l.C * l.KH * l.KW, NP4];
  const out = empty(rt, shape, 'f32', op);
  rt.dispatch(rt.kernel('conv2d_im2col', src, { COL2IM: col2im }), {
    params: {
      N: l.N,
      C: l.C,
      H: l.H,
      W: l.W,
      KH: l.KH,
      KW: l.KW,
      SH: l.SH,
      SW: l.SW,
      PH: l.PH,
      PW: l.PW,
      DH: l.DH,
      DW: l.DW,
      OH: l.OH,
      OW: l.OW,
      NP4,
      total: out.size,
    },
    buffers: [t.buffer(op), out.buffer(op)],
    workgroups: rt.grid1d(out.size, 64),
    op,
    bytes: 4 * (t.size + out.size),
    shapes: `${formatShape(t.shape)} -> ${formatShape(shape)}`,
  });
  return out;
}

export function forwardFolded(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeometry): Tensor {
  const NP4 = foldedColumns(g);
  const K = g.C * g.KH * g.KW;
  const col = move(x, false, g, NP4, OP);
  const yf = gemm(w, col, { batch: 1, M: g.O, N: NP4, K, transA: false, transB: false, strideA: 0, strideB: 0 }, OP);
  col.dispose();
  if (bias) addBiasInPlace(yf, bias, 1, g.O, NP4);
  const y = move(yf, true, flat(g, g.O), NP4, OP);
  yf.dispose();
  return y;
}

export function inputGradFolded(dy: Tensor, w: Tensor, g: ConvGeometry, op: string): Tensor {
  const NP4 = foldedColumns(g);
  const K = g.C * g.KH * g.KW;
  const dyf = move(dy, false, flat(g, g.O), NP4, op);
  const dcol = gemm(
    w,
    dyf,
    { batch: 1, M: K, N: NP4, K: g.O, transA: true, transB: false, strideA: 0, strideB: 0 },
    op,
  );
  dyf.dispose();
  const dx = move(dcol, true, g, NP4, op);
  dcol.dispose();
  return dx;
}

export function weightGradFolded(x: Tensor, dy: Tensor, g: ConvGeometry, op: string): Tensor {
  const NP4 = foldedColumns(g);
  const K = g.C * g.KH * g.KW;
  const col = move(x, false, g, NP4, op);
  const dyf = move(dy, false, flat(g, g.O), NP4, op);
  // One product over all images and pixels (K = NP4; the zero columns add nothing): no partials.
  const dw = gemm(
    dyf,
    col,
    { batch: 1, M: g.O, N: K, K: NP4, transA: false, transB: true, strideA: 0, strideB: 0 },
    op,
  );
  col.dispose();
  dyf.dispose();
  return reshapeOwned(dw, [g.O, g.C, g.KH, g.KW]);
}
