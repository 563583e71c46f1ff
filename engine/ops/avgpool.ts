// Adaptive 2-D average pooling over [N, C, H, W] with PyTorch's window rule (cells may overlap
// when the sizes do not divide). The backward pass gathers per input element: no atomics.
import fwdSrc from '../../shaders/adaptive_avgpool2d.wgsl';
import gradSrc from '../../shaders/adaptive_avgpool2d_grad.wgsl';
import type { Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, requireF32 } from './alloc.js';
import { pair, perPlaneChunk, type Size2 } from './maxpool.js';

export function adaptiveAvgPool2d(x: Tensor, outputSize: Size2): Tensor {
  const op = 'adaptiveAvgPool2d';
  requireF32(op, x);
  if (x.rank !== 4) throw new Error(`${op}: expects an input [N, C, H, W], got ${x.describe()}`);
  const [N, C, H, W] = x.shape;
  const [OH, OW] = pair(outputSize, 'outputSize', op);
  if (OH < 1 || OW < 1) throw new Error(`${op}: output size ${OH}x${OW} must be positive`);
  if (H < 1 || W < 1) throw new Error(`${op}: input ${x.describe()} has an empty spatial size`);
  const rt = x.rt;
  const y = empty(rt, [N, C, OH, OW], 'f32', op);
  const shapes = `${x.describe()} -> ${OH}x${OW}`;
  const span = (I: number, O: number): number => {
    let s = 0;
    for (let o = 0; o < O; o++) s += Math.ceil(((o + 1) * I) / O) - Math.floor((o * I) / O);
    return s;
  };
  const fwd = rt.kernel('adaptive_avgpool2d', fwdSrc);
  perPlaneChunk(N * C, (planeBase, planes) =>
    rt.dispatch(fwd, {
      params: { H, W, OH, OW, planeBase },
      buffers: [x.buffer(op), y.buffer(op)],
      workgroups: [Math.ceil(OW / 8), Math.ceil(OH / 8), planes],
      op,
      flops: planes * span(H, OH) * span(W, OW),
      bytes: 4 * planes * (H * W + OH * OW),
      shapes,
    }),
  );
  return record(y, op, [x], (g) => {
    const bop = `${op}.backward`;
    const dx = empty(rt, x.shape, 'f32', bop);
    const grad = rt.kernel('adaptive_avgpool2d_grad', gradSrc);
    perPlaneChunk(N * C, (planeBase, planes) =>
      rt.dispatch(grad, {
        params: { H, W, OH, OW, planeBase },
        buffers: [g.buffer(bop), dx.buffer(bop)],
        workgroups: [Math.ceil(W / 8), Math.ceil(H / 8), planes],
        op: bop,
        flops: 2 * planes * H * W,
        bytes: 4 * planes * (H * W + OH * OW),
        shapes,
      }),
    );
    return [dx];
  });
}
