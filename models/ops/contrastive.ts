// The MoCo/DenseCL contrastive loss against a queue of negatives, as one op:
//   loss = mean_r [ logsumexp([pos_r, q_r . queue_j] / tau) - pos_r / tau ]
// with its gradients for q and pos (the queue has none). Two implementations:
// - 'tiled' (contrastive_tiled.ts): fused tiled kernels, no R x K buffer; for GPUs.
// - 'gemm' (contrastive_gemm.ts): a GEMM into a logits block and per-row kernels; faster on
//   lavapipe (bench/contrastive.ts measures both).
import type { Tensor } from '../../engine/tensor.js';
import type { Runtime } from '../../engine/runtime.js';
import { requireF32, sameRuntime } from '../../engine/ops/alloc.js';
import { gemmContrastiveLoss } from './contrastive_gemm.js';
import { tiledContrastiveLoss, tiledProblem } from './contrastive_tiled.js';

export type ContrastiveVariant = 'tiled' | 'gemm';

export interface ContrastiveOptions {
  tau: number;
  /** 'gemm' only: the largest logits block kept in memory, in bytes; bigger problems run in row chunks. */
  maxLogitBytes?: number;
  /** Forces an implementation (tests and benchmarks); by default chooseContrastiveVariant's
   *  (whole models: change rt.profile.kernels.contrastive with overrideKernels). */
  variant?: ContrastiveVariant;
}

/**
 * The implementation used on this device for feature width D: the device profile's choice
 * (rt.profile.kernels.contrastive: 'gemm' on CPU drivers such as lavapipe, where it measured
 * 4.5x faster, 'tiled' on GPUs), and 'gemm' wherever D does not suit the tiled kernels.
 */
export function chooseContrastiveVariant(rt: Runtime, D: number): ContrastiveVariant {
  return rt.profile.kernels.contrastive === 'gemm' || tiledProblem(D) ? 'gemm' : 'tiled';
}

/**
 * q: [R, D] normalised queries (with gradient); pos: [R] positive logits q_r . k_r (with
 * gradient); queue: [K, D] normalised negatives (no gradient). Returns the mean loss (scalar).
 * NaN in any input gives a NaN loss.
 */
export function queueContrastiveLoss(q: Tensor, pos: Tensor, queue: Tensor, opts: ContrastiveOptions): Tensor {
  const op = 'contrastiveLoss';
  requireF32(op, q, pos, queue);
  const rt = sameRuntime(op, q, pos, queue);
  if (q.rank !== 2 || queue.rank !== 2 || q.shape[1] !== queue.shape[1] || pos.size !== q.shape[0]) {
    throw new Error(
      `${op}: expects q [R, D], pos [R], queue [K, D]; got ${q.describe()}, ${pos.describe()}, ${queue.describe()}`,
    );
  }
  const [R, D] = q.shape;
  const K = queue.shape[0];
  if (R === 0 || D === 0 || K === 0) {
    throw new Error(
      `${op}: needs at least one row, one feature and one queue entry; got q ${q.describe()}, queue ${queue.describe()}`,
    );
  }
  if (!(opts.tau > 0) || !Number.isFinite(opts.tau))
    throw new Error(`${op}: the temperature tau must be a positive number, got ${opts.tau}`);
  const variant = opts.variant ?? chooseContrastiveVariant(rt, D);
  if (variant === 'gemm') return gemmContrastiveLoss(q, pos, queue, opts.tau, opts.maxLogitBytes, op);
  const problem = tiledProblem(D);
  if (problem)
    throw new Error(
      `${op}: the tiled kernels cannot run q ${q.describe()}: ${problem}; leave variant unset to choose automatically`,
    );
  return tiledContrastiveLoss(q, pos, queue, opts.tau, op);
}
