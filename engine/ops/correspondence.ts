// DenseCL's dense correspondence between the two views (no gradient): for each query cell the
// most similar key cell by cosine similarity of backbone features.
import corrSrc from '../../shaders/dense_correspondence.wgsl';
import { Tensor } from '../tensor.js';
import { empty, requireF32, sameRuntime } from './alloc.js';

/** qb, kb: [N, C, S2] backbone features. Returns i32 [N, S2] indices into kb's cells. */
export function denseCorrespondence(qb: Tensor, kb: Tensor): Tensor {
  const op = 'denseCorrespondence';
  requireF32(op, qb, kb);
  const rt = sameRuntime(op, qb, kb);
  if (qb.rank !== 3 || kb.rank !== 3 || qb.shape.some((d, i) => d !== kb.shape[i])) {
    throw new Error(`${op}: expects two [N, C, S2] feature maps of one shape, got ${qb.describe()} and ${kb.describe()}`);
  }
  const [N, C, S2] = qb.shape;
  const ind = empty(rt, [N, S2], 'i32', op);
  rt.dispatch(rt.kernel('dense_correspondence', corrSrc), {
    params: { N, C, S2 },
    buffers: [qb.buffer(op), kb.buffer(op), ind.buffer(op)],
    workgroups: rt.grid1d(N * S2, 64),
    op,
    flops: 4 * N * S2 * S2 * C,
    bytes: 4 * (2 * N * C * S2 + N * S2),
    shapes: `${N}x${C}x${S2}`,
  });
  return ind;
}
