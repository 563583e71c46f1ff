// DenseCL's dense correspondence between the two views (no gradient): for each query cell the
// most similar key cell by cosine similarity of backbone features. Two kernels:
// - 'tiled' (correspondence_tile.wgsl): a workgroup per 16 query cells of an image, key cells
//   and channels streamed through workgroup memory; for GPUs.
// - 'direct' (dense_correspondence.wgsl): one invocation per query cell walking every key cell
//   and channel; tuned for lavapipe.
import corrSrc from '../../shaders/densecl/dense_correspondence.wgsl';
import tileSrc from '../../shaders/densecl/correspondence_tile.wgsl';
import type { Tensor } from '../../engine/tensor.js';
import type { Runtime } from '../../engine/runtime.js';
import { empty, requireF32, sameRuntime } from '../../engine/ops/alloc.js';

export type CorrespondenceVariant = 'tiled' | 'direct';

/** The device profile's choice (rt.profile.kernels.correspondence, changed for whole models by overrideKernels): 'direct' on CPU drivers such as lavapipe, where it measured 4x faster, 'tiled' on GPUs. */
export function chooseCorrespondenceVariant(rt: Runtime): CorrespondenceVariant {
  return rt.profile.kernels.correspondence;
}

/** qb, kb: [N, C, S2] backbone features. Returns i32 [N, S2] indices into kb's cells. `variant` forces a kernel. */
export function denseCorrespondence(qb: Tensor, kb: Tensor, variant?: CorrespondenceVariant): Tensor {
  const op = 'denseCorrespondence';
  requireF32(op, qb, kb);
  const rt = sameRuntime(op, qb, kb);
  if (qb.rank !== 3 || kb.rank !== 3 || qb.shape.some((d, i) => d !== kb.shape[i])) {
    throw new Error(
      `${op}: expects two [N, C, S2] feature maps of one shape, got ${qb.describe()} and ${kb.describe()}`,
    );
  }
  const [N, C, S2] = qb.shape;
  const ind = empty(rt, [N, S2], 'i32', op);
  const tiled = (variant ?? chooseCorrespondenceVariant(rt)) === 'tiled';
  if (tiled && N > 65535) throw new Error(`${op}: ${N} images exceed the 65535 one dispatch takes; split the batch`);
  rt.dispatch(tiled ? rt.kernel('correspondence_tile', tileSrc) : rt.kernel('dense_correspondence', corrSrc), {
    params: { N, C, S2 },
    buffers: [qb.buffer(op), kb.buffer(op), ind.buffer(op)],
    workgroups: tiled ? [Math.ceil(S2 / 16), N, 1] : rt.grid1d(N * S2, 64),
    op,
    flops: 4 * N * S2 * S2 * C,
    bytes: 4 * (2 * N * C * S2 + N * S2),
    shapes: `${N}x${C}x${S2}`,
  });
  return ind;
}
