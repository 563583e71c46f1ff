// Adaptive 2-D average pooling over [N, C, H, W] with PyTorch's window rule (cells may overlap
// when the sizes do not divide). The backward pass gathers per input element: no atomics.
import fwdSrc from '../../shaders/adaptive_avgpool2d.wgsl';
import gradSrc from '../../shaders/adaptive_avgpool2d_grad.wgsl';
import { Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { empty, requireF32 } from './alloc.js';
import { pair, type Size2 } from './maxpool.js';

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
  rt.dispatch(rt.kernel('adaptive_avgpool2d', fwdSrc), {
    params: { H, W, OH, OW, total: y.size },
    buffers: [x.buffer(op), y.buffer(op)],
    workgroups: rt.grid1d(y.size, 256),
    op,
    flops: N * C * span(H, OH) * span(W, OW),
    bytes: 4 * (x.size + y.size),
    shapes,
  });
  return record(y, op, [x], (g) => {
    const bop = `${op}.backward`;
    const dx = empty(rt, x.shape, 'f32', bop);
    rt.dispatch(rt.kernel('adaptive_avgpool2d_grad', gradSrc), {
      params: { H, W, OH, OW, total: x.size },
      buffers: [g.buffer(bop), dx.buffer(bop)],
      workgroups: rt.grid1d(x.size, 256),
      op: bop,
      flops: 2 * x.size,
      bytes: 4 * (x.size + y.size),
      shapes,
    });
    return [dx];
  });
}
