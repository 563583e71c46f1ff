// The contrastive loss (models/ops/contrastive.ts) as fused tiled kernels, the FlashAttention
// pattern: logits live only in registers and workgroup memory, a tile at a time.
//   forward:  contrastive_tile (per 64-row block and split of the queue: online max and sum of
//             exp) -> contrastive_tile_merge (adds the positive, merges the splits in order:
//             lse and per-row loss) -> mean
//   backward: contrastive_tile[BACKWARD] (recomputes the logits, P = exp(l - lse), partial
//             P . queue per split) -> contrastive_tile_dq (sums the splits in order, scales;
//             dpos)
// The queue is split across workgroups when row blocks are few, so a small R still fills a
// large GPU; memory beyond q's size is O(splits x R x D) with splits x row blocks bounded by
// TARGET_WORKGROUPS, whatever K is.
import tileSrc from '../../shaders/densecl/contrastive_tile.wgsl';
import mergeSrc from '../../shaders/densecl/contrastive_tile_merge.wgsl';
import dqSrc from '../../shaders/densecl/contrastive_tile_dq.wgsl';
import type { Tensor } from '../../engine/tensor.js';
import { record } from '../../engine/autograd.js';
import { empty } from '../../engine/ops/alloc.js';
import { sum } from '../../engine/ops/reduce.js';
import { unaryMap } from '../../engine/ops/pointwise.js';

const ROWS = 64;
const COLS = 64;
/** Workgroups the split aims for: a few per compute unit of a large GPU (132 SMs on an H200). */
const TARGET_WORKGROUPS = 1024;
/** Fewest column tiles a split streams, so the per-split merge stays a small part of the work. */
const MIN_TILES_PER_SPLIT = 4;
/** Widest D the backward keeps in registers: 16 invocations x 2 vec4s per row. */
export const TILED_MAX_D = 128;

/** Why the tiled kernels cannot run this D, or null. */
export function tiledProblem(D: number): string | null {
  if (D % 4) return `D (${D}) must be a multiple of 4`;
  if (D > TILED_MAX_D) return `D (${D}) must be at most ${TILED_MAX_D}`;
  return null;
}

/** How the queue's column tiles are split across workgroups for R rows. */
export function tiledSplit(R: number, K: number): { rowBlocks: number; tilesPerSplit: number; splits: number } {
  const rowBlocks = Math.ceil(R / ROWS);
  const tiles = Math.ceil(K / COLS);
  const wanted = Math.max(
    1,
    Math.min(Math.ceil(TARGET_WORKGROUPS / rowBlocks), Math.floor(tiles / MIN_TILES_PER_SPLIT)),
  );
  const tilesPerSplit = Math.ceil(tiles / wanted);
  return { rowBlocks, tilesPerSplit, splits: Math.ceil(tiles / tilesPerSplit) };
}

/** Inputs checked by queueContrastiveLoss (D passes tiledProblem). */
export function tiledContrastiveLoss(q: Tensor, pos: Tensor, queue: Tensor, tau: number, op: string): Tensor {
  const rt = q.rt;
  const [R, D] = q.shape;
  const K = queue.shape[0];
  const D4 = D / 4;
  const { rowBlocks, tilesPerSplit, splits } = tiledSplit(R, K);
  if (rowBlocks > 65535)
    throw new Error(`${op}: ${R} rows exceed the ${65535 * ROWS} the tiled kernels dispatch at once; split the rows`);
  const invTau = 1 / tau;
  const flops = 2 * R * K * D;
  const shapes = `${R}x${D} . ${K}x${D}`;
  const lse = empty(rt, [R], 'f32', op);
  const perRow = empty(rt, [R], 'f32', op);
  const stats = empty(rt, [splits, R, 4], 'f32', op);
  rt.dispatch(rt.kernel('contrastive_tile', tileSrc, { BACKWARD: false }), {
    params: { R, K, D4, tilesPerSplit, invTau },
    buffers: [q.buffer(op), queue.buffer(op), lse.buffer(op), stats.buffer(op)],
    workgroups: [rowBlocks, splits, 1],
    op,
    flops,
    bytes: 4 * (R * D + rowBlocks * K * D),
    shapes,
  });
  rt.dispatch(rt.kernel('contrastive_tile_merge', mergeSrc), {
    params: { R, splits, invTau },
    buffers: [pos.buffer(op), stats.buffer(op), lse.buffer(op), perRow.buffer(op)],
    workgroups: rt.grid1d(R, 64),
    op,
    bytes: 4 * (R * 3 + splits * R * 4),
    shapes,
  });
  stats.dispose();
  const total = sum(perRow);
  perRow.dispose();
  const loss = unaryMap(total, 'alpha * v', op, 1 / R);
  total.dispose();
  return record(loss, op, [q, pos, queue], (g) => {
    const bop = `${op}.backward`;
    const part = empty(rt, [splits, R, D], 'f32', bop);
    rt.dispatch(rt.kernel('contrastive_tile', tileSrc, { BACKWARD: true }), {
      params: { R, K, D4, tilesPerSplit, invTau },
      buffers: [q.buffer(bop), queue.buffer(bop), lse.buffer(bop), part.buffer(bop)],
      workgroups: [rowBlocks, splits, 1],
      op: bop,
      flops: 2 * flops,
      bytes: 4 * (R * D + 2 * rowBlocks * K * D + splits * R * D),
      shapes,
    });
    const dq = empty(rt, [R, D], 'f32', bop);
    const dpos = empty(rt, [R], 'f32', bop);
    rt.dispatch(rt.kernel('contrastive_tile_dq', dqSrc), {
      params: { R, D4, splits, invTau, invRows: 1 / R },
      buffers: [g.buffer(bop), pos.buffer(bop), lse.buffer(bop), part.buffer(bop), dq.buffer(bop), dpos.buffer(bop)],
      workgroups: rt.grid1d(R * D4, 64),
      op: bop,
      bytes: 4 * (splits * R * D + R * D + 3 * R),
      shapes,
    });
    part.dispose();
    lse.dispose();
    return [dq, dpos, null];
  });
}
