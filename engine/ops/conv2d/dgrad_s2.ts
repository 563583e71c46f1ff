// The input gradient of 3x3, stride-2, padding-1 convolutions (ResNet's downsampling convs) in
// one pass over dy for all four residue classes of dx (shaders/conv2d/dgrad_s2_sg8.wgsl), where the
// device has 8-wide subgroups; elsewhere such a gradient runs as one core dispatch per class.
import src from '../../../shaders/conv2d/dgrad_s2_sg8.wgsl';
import type { Tensor } from '../../tensor.js';
import { formatShape } from '../../tensor.js';
import type { ConvGeometry } from './geometry.js';

/** Input channels and dy columns per invocation: 8 x 4 keeps the accumulators at 128 floats,
 *  as in the forward core, with 2 x 5 dy values and 18 A vec4s (shared) loaded per channel. */
export const STRIDE2_TM = 8;
const TB = 4;

/** Whether this convolution's input gradient takes the fused stride-2 kernel. */
export function fusedStride2(g: ConvGeometry, sg8: boolean): boolean {
  return (
    sg8 && g.KH === 3 && g.KW === 3 && g.SH === 2 && g.SW === 2 && g.PH === 1 && g.PW === 1 && g.DH === 1 && g.DW === 1
  );
}

/** Writes dx [N, C, H, W] from dy and a, the weight as [O, 3, 3, MP] (MP: C rounded up to STRIDE2_TM). */
export function inputGradStride2(dy: Tensor, a: Tensor, dx: Tensor, g: ConvGeometry, op: string): void {
  const rt = dy.rt;
  const TJ = Math.ceil(g.OW / TB);
  const G = g.N * g.OH * TJ;
  const MP = Math.ceil(g.C / STRIDE2_TM) * STRIDE2_TM;
  // Lane blocks beyond the 65535-workgroup limit fold into z (the shader rebuilds y + z * ny).
  const blocks = Math.ceil(G / 8);
  const z = Math.ceil(blocks / 65535);
  rt.dispatch(rt.kernel('conv2d_dgrad_s2_sg8', src, { TM: STRIDE2_TM, TB }), {
    params: { N: g.N, O: g.O, OH: g.OH, OW: g.OW, C: g.C, H: g.H, W: g.W, MP, TJ, G },
    buffers: [dy.buffer(op), a.buffer(op), dx.buffer(op)],
    workgroups: [MP / STRIDE2_TM, Math.ceil(blocks / z), z],
    op,
    flops: 2 * g.N * g.OH * g.OW * g.O * g.C * 9,
    bytes: 4 * (dy.size + a.size + dx.size),
    shapes: `${formatShape(dy.shape)} -> ${formatShape(dx.shape)}`,
  });
}
