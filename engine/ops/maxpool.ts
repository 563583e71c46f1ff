// 2-D max pooling over [N, C, H, W] (PyTorch's MaxPool2d without dilation or ceil_mode).
// Padding counts as -inf; the forward pass records the index of each window's first maximum
// and the backward pass gathers per input element, so no atomics are needed. Unlike PyTorch,
// a NaN in a window is not propagated (comparisons with NaN are false).
import fwdSrc from '../../shaders/maxpool2d.wgsl';
import gradSrc from '../../shaders/maxpool2d_grad.wgsl';
import type { Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, requireF32 } from './alloc.js';

/** Outputs per invocation along each axis in the forward pass: 2 x 2 windows share loads. */
const BLOCK = 2;

export type Size2 = number | readonly [number, number];

export interface MaxPoolOptions {
  kernelSize: Size2;
  /** Defaults to kernelSize. */
  stride?: Size2;
  /** Zero by default; at most half the kernel size. */
  padding?: Size2;
}

export function pair(v: Size2, what: string, op: string): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (p.length !== 2 || p.some((d) => !Number.isInteger(d)))
    throw new Error(`${op}: ${what} must be an integer or a pair of integers, got ${JSON.stringify(v)}`);
  return p;
}

export function maxPool2d(x: Tensor, opts: MaxPoolOptions): Tensor {
  const op = 'maxPool2d';
  requireF32(op, x);
  if (x.rank !== 4) throw new Error(`${op}: expects an input [N, C, H, W], got ${x.describe()}`);
  const [N, C, H, W] = x.shape;
  const [kh, kw] = pair(opts.kernelSize, 'kernelSize', op);
  const [sh, sw] = pair(opts.stride ?? opts.kernelSize, 'stride', op);
  const [ph, pw] = pair(opts.padding ?? 0, 'padding', op);
  if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0) {
    throw new Error(
      `${op}: kernel ${kh}x${kw} and stride ${sh}x${sw} must be positive and padding ${ph}x${pw} non-negative`,
    );
  }
  if (2 * ph > kh || 2 * pw > kw)
    throw new Error(`${op}: padding ${ph}x${pw} must be at most half the kernel ${kh}x${kw}`);
  if (H + 2 * ph < kh || W + 2 * pw < kw) {
    throw new Error(
      `${op}: the ${kh}x${kw} window is larger than input ${x.describe()} padded by ${ph}x${pw} (${H + 2 * ph}x${W + 2 * pw}); use a smaller kernel or more padding`,
    );
  }
  const OH = Math.floor((H + 2 * ph - kh) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - kw) / sw) + 1;
  const rt = x.rt;
  const y = empty(rt, [N, C, OH, OW], 'f32', op);
  const idx = empty(rt, [N, C, OH, OW], 'i32', op);
  const geometry = { H, W, OH, OW, ph, pw };
  const shapes = `${x.describe()} k${kh}x${kw} s${sh}x${sw} p${ph}x${pw}`;
  const fwd = rt.kernel('maxpool2d', fwdSrc, { KH: kh, KW: kw, SH: sh, SW: sw, BH: BLOCK, BW: BLOCK });
  perPlaneChunk(N * C, (planeBase, planes) =>
    rt.dispatch(fwd, {
      params: { ...geometry, planeBase },
      buffers: [x.buffer(op), y.buffer(op), idx.buffer(op)],
      workgroups: [Math.ceil(OW / (8 * BLOCK)), Math.ceil(OH / (8 * BLOCK)), planes],
      op,
      flops: planes * OH * OW * kh * kw,
      bytes: 4 * planes * (H * W + 2 * OH * OW),
      shapes,
    }),
  );
  record(y, op, [x], (g) => {
    const bop = `${op}.backward`;
    const dx = empty(rt, x.shape, 'f32', bop);
    const NH = Math.ceil(kh / sh);
    const NW = Math.ceil(kw / sw);
    const grad = rt.kernel('maxpool2d_grad', gradSrc, { KH: kh, KW: kw, SH: sh, SW: sw, NH, NW });
    perPlaneChunk(N * C, (planeBase, planes) =>
      rt.dispatch(grad, {
        params: { ...geometry, planeBase },
        buffers: [g.buffer(bop), idx.buffer(bop), dx.buffer(bop)],
        // Blocks of sh x sw inputs: block b holds rows [b * sh - ph, (b + 1) * sh - ph).
        workgroups: [
          Math.ceil((Math.floor((W - 1 + pw) / sw) + 1) / 8),
          Math.ceil((Math.floor((H - 1 + ph) / sh) + 1) / 8),
          planes,
        ],
        op: bop,
        flops: planes * H * W * NH * NW,
        bytes: 4 * planes * (H * W + 2 * OH * OW),
        shapes,
      }),
    );
    return [dx];
  });
  if (!y.node) idx.dispose();
  return y;
}

/** The pooling kernels run on a 3-D grid with one z per plane: at most 65535 planes a dispatch. */
export function perPlaneChunk(planes: number, dispatch: (planeBase: number, count: number) => void): void {
  for (let base = 0; base < planes; base += 65535) dispatch(base, Math.min(65535, planes - base));
}
