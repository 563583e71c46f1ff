// 1x1 convolutions without padding (any stride) as per-image GEMMs on matmul.ts: Y[n] = W [O, C]
// x X[n] [C, pixels]. A strided one first packs the pixels its outputs read (every SH-th row,
// SW-th column), which turns it into a stride-1 product instead of a window that skips most of
// what it loads; planes whose pixel count is not a multiple of 4 are packed zero-padded to one,
// so every such product runs on the subgroup matmul (it needs K and N in multiples of 4).
import planesSrc from '../../../shaders/conv2d/planes.wgsl';
import biasSrc from '../../../shaders/conv2d/bias.wgsl';
import type { Tensor } from '../../tensor.js';
import { formatShape } from '../../tensor.js';
import type { ConvGeometry } from './geometry.js';
import { empty } from '../alloc.js';
import { gemm } from '../matmul.js';
import { sum, sumFirstAxisInto } from '../reduce.js';
import { reshape } from '../shape.js';

const OP = 'conv2d';

/** Pixels per packed plane: the output grid, padded to a multiple of 4. */
const packedPixels = (g: ConvGeometry): number => Math.ceil((g.OH * g.OW) / 4) * 4;
/** Whether x's planes already are the packed planes (stride 1, pixel count a multiple of 4). */
const inputPacked = (g: ConvGeometry): boolean => g.SH === 1 && g.SW === 1 && packedPixels(g) === g.OH * g.OW;
const outputPacked = (g: ConvGeometry): boolean => packedPixels(g) === g.OH * g.OW;

/** A view of t with another shape; t itself is released. */
export function reshapeOwned(t: Tensor, shape: number[]): Tensor {
  const v = reshape(t, shape);
  t.dispose();
  return v;
}

/**
 * The sum of weight-gradient partials [chunks, ...] over the chunks, shaped `shape`; with
 * `into` (the weight's accumulating .grad) it is added there in the reduction and null returned.
 */
export function sumPartials(partial: Tensor, shape: number[], into: Tensor | null, op: string): Tensor | null {
  // A single partial is the sum itself (the caller's accumulation adds it).
  if (partial.shape[0] === 1) return reshapeOwned(partial, shape);
  if (!into) return reshapeOwned(sum(partial, 0), shape);
  sumFirstAxisInto(partial, into, op);
  partial.dispose();
  return null;
}

/** Full planes [planes, H, W] <-> packed planes [planes, P4] (see shaders/conv2d/planes.wgsl). */
function movePlanes(
  t: Tensor,
  gather: boolean,
  planes: number,
  full: { H: number; W: number; SH: number; SW: number },
  g: ConvGeometry,
  op: string,
): Tensor {
  const rt = t.rt;
  const P4 = packedPixels(g);
  const rows = planes * (gather ? g.OH : full.H);
  const out = empty(rt, gather ? [planes, P4] : [planes, full.H, full.W], 'f32', op);
  rt.dispatch(rt.kernel('conv2d_planes', planesSrc, { GATHER: gather }), {
    params: { H: full.H, W: full.W, SH: full.SH, SW: full.SW, OH: g.OH, OW: g.OW, P4, rows },
    buffers: [t.buffer(op), out.buffer(op)],
    workgroups: rt.grid1d(rows, 64),
    op,
    bytes: 4 * (t.size + out.size),
    shapes: `${formatShape(t.shape)} -> ${formatShape(out.shape)}`,
  });
  return out;
}

/** x's pixels that the outputs read, packed (x itself when it already is). */
function packInput(x: Tensor, g: ConvGeometry, op: string): Tensor {
  return inputPacked(g) ? x : movePlanes(x, true, g.N * g.C, g, g, op);
}

/** An output-sized tensor [N, planes, OH, OW] packed (itself when it already is). */
function packOutput(t: Tensor, planes: number, g: ConvGeometry, op: string): Tensor {
  return outputPacked(g) ? t : movePlanes(t, true, g.N * planes, { H: g.OH, W: g.OW, SH: 1, SW: 1 }, g, op);
}

const release = (t: Tensor, unless: Tensor): void => {
  if (t !== unless) t.dispose();
};

export function forwardPointwise(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeometry): Tensor {
  const P4 = packedPixels(g);
  const xs = packInput(x, g, OP);
  const c = gemm(
    w,
    xs,
    { batch: g.N, M: g.O, N: P4, K: g.C, transA: false, transB: false, strideA: 0, strideB: g.C * P4 },
    OP,
  );
  release(xs, x);
  if (bias) addBiasInPlace(c, bias, g.N, g.O, P4);
  if (outputPacked(g)) return reshapeOwned(c, [g.N, g.O, g.OH, g.OW]);
  const y = movePlanes(c, false, g.N * g.O, { H: g.OH, W: g.OW, SH: 1, SW: 1 }, g, OP);
  c.dispose();
  return reshapeOwned(y, [g.N, g.O, g.OH, g.OW]);
}

export function addBiasInPlace(y: Tensor, bias: Tensor, N: number, O: number, HW: number): void {
  const rt = y.rt;
  rt.dispatch(rt.kernel('conv2d_bias', biasSrc), {
    params: { n: N * O * HW, HW, O },
    buffers: [bias.buffer(OP), y.buffer(OP)],
    workgroups: rt.grid1d(N * O * HW, 256),
    op: OP,
    flops: N * O * HW,
    bytes: 8 * N * O * HW,
    shapes: formatShape([N, O, HW]),
  });
}

export function inputGradPointwise(dy: Tensor, w: Tensor, g: ConvGeometry, op: string): Tensor {
  const P4 = packedPixels(g);
  const dyp = packOutput(dy, g.O, g, op);
  const c = gemm(
    w,
    dyp,
    { batch: g.N, M: g.C, N: P4, K: g.O, transA: true, transB: false, strideA: 0, strideB: g.O * P4 },
    op,
  );
  release(dyp, dy);
  if (inputPacked(g)) return reshapeOwned(c, [g.N, g.C, g.H, g.W]);
  const dx = movePlanes(c, false, g.N * g.C, g, g, op);
  c.dispose();
  return reshapeOwned(dx, [g.N, g.C, g.H, g.W]);
}

export function weightGradPointwise(
  x: Tensor,
  dy: Tensor,
  g: ConvGeometry,
  op: string,
  into: Tensor | null,
): Tensor | null {
  const P4 = packedPixels(g);
  const xs = packInput(x, g, op);
  const dyp = packOutput(dy, g.O, g, op);
  // One product per image (K = its packed pixels; the zero padding adds nothing), then a
  // fixed-order sum over the images.
  const per = gemm(
    dyp,
    xs,
    { batch: g.N, M: g.O, N: g.C, K: P4, transA: false, transB: true, strideA: g.O * P4, strideB: g.C * P4 },
    op,
  );
  release(xs, x);
  release(dyp, dy);
  return sumPartials(per, [g.O, g.C, 1, 1], into, op);
}
