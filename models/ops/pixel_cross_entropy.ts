// Per-pixel cross-entropy for segmentation: logits [N, C, H, W] against labels i32 [N, H, W],
// pixels labelled `ignoreIndex` left out, as PyTorch's F.cross_entropy(x, y, ignore_index=...)
// with reduction 'mean' (over the counted pixels) or 'sum'. Classes are read with a stride of
// H*W, so the logits need no permute to [N*H*W, C]. The count of pixels stays on the GPU (the
// backward pass reads it there), so nothing is read back during a training step.
// One difference from PyTorch: when every pixel is ignored the mean is 0 with a zero gradient
// (PyTorch gives NaN), so a batch without labelled pixels cannot poison training.
import ceSrc from '../../shaders/densecl/pixel_cross_entropy.wgsl';
import meanSrc from '../../shaders/densecl/pixel_cross_entropy_mean.wgsl';
import gradSrc from '../../shaders/densecl/pixel_cross_entropy_grad.wgsl';
import type { Tensor } from '../../engine/tensor.js';
import { record } from '../../engine/autograd.js';
import { empty, requireF32, sameRuntime } from '../../engine/ops/alloc.js';
import { sum } from '../../engine/ops/reduce.js';

export interface PixelCrossEntropyOptions {
  /** Label value that marks pixels to leave out (255 in PASCAL VOC). */
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum';
}

export function pixelCrossEntropy(logits: Tensor, labels: Tensor, opts: PixelCrossEntropyOptions = {}): Tensor {
  const op = 'pixelCrossEntropy';
  const ignoreIndex = opts.ignoreIndex ?? 255;
  const reduction = opts.reduction ?? 'mean';
  requireF32(op, logits);
  sameRuntime(op, logits, labels);
  if (logits.rank !== 4) throw new Error(`${op}: logits must be [N, C, H, W], got ${logits.describe()}`);
  const [N, C, H, W] = logits.shape;
  if (
    labels.dtype !== 'i32' ||
    labels.rank !== 3 ||
    labels.shape[0] !== N ||
    labels.shape[1] !== H ||
    labels.shape[2] !== W
  ) {
    throw new Error(
      `${op}: labels must be i32 [${N}, ${H}, ${W}] (one class per pixel of logits ${logits.describe()}), got ${labels.describe()}`,
    );
  }
  if (C === 0) throw new Error(`${op}: logits ${logits.describe()} have no classes`);
  if (reduction !== 'mean' && reduction !== 'sum')
    throw new Error(`${op}: reduction must be 'mean' or 'sum', got '${reduction}'`);
  if (!Number.isInteger(ignoreIndex)) throw new Error(`${op}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  labels.buffer(op);
  const rt = logits.rt;
  const HW = H * W;
  const P = N * HW;
  const shapes = `${logits.describe()}`;
  const perPixel = empty(rt, [2, P], 'f32', op);
  const lse = empty(rt, [P], 'f32', op);
  rt.dispatch(rt.kernel('pixel_cross_entropy', ceSrc), {
    params: { HW, classes: C, pixels: P, ignoreIndex, invalid: NaN },
    buffers: [logits.buffer(op), labels.buffer(op), perPixel.buffer(op), lse.buffer(op)],
    workgroups: [Math.ceil(HW / 256), N, 1],
    op,
    flops: 5 * P * C,
    bytes: 8 * P * C + 16 * P,
    shapes,
  });
  const sums = sum(perPixel, 1);
  perPixel.dispose();
  const out = empty(rt, [], 'f32', op);
  const mean = reduction === 'mean' ? 1 : 0;
  rt.dispatch(rt.kernel('pixel_cross_entropy_mean', meanSrc), {
    params: { mean },
    buffers: [sums.buffer(op), out.buffer(op)],
    workgroups: [1, 1, 1],
    op,
    flops: 1,
    bytes: 12,
    shapes,
  });
  record(out, op, [logits], (g) => {
    const bop = `${op}.backward`;
    const dx = empty(rt, logits.shape, 'f32', bop);
    rt.dispatch(rt.kernel('pixel_cross_entropy_grad', gradSrc), {
      params: { HW, classes: C, ignoreIndex, mean },
      buffers: [
        logits.buffer(bop),
        labels.buffer(bop),
        lse.buffer(bop),
        sums.buffer(bop),
        g.buffer(bop),
        dx.buffer(bop),
      ],
      workgroups: [Math.ceil(HW / 256), C, N],
      op: bop,
      flops: 4 * P * C,
      bytes: 8 * P * C + 12 * P,
      shapes,
    });
    return [dx];
  });
  if (!out.node) {
    lse.dispose();
    sums.dispose();
  }
  return out;
}
