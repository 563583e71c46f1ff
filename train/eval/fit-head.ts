// The training loop both probes share: a small head on frozen features, trained on the GPU by
// SGD (momentum 0.9, cosine learning rate) over shuffled mini-batches, one scope per step.
import { scope, noGrad, backward, Rng, type Tensor } from '../../engine/index.js';
import type { ModelState } from '../../models/state.js';
import { Sgd } from '../../engine/ops/sgd.js';
import { cosineLr } from '../optim/schedule.js';

export interface FitOptions {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  /** Seeds the order of the mini-batches. */
  seed: number;
}

/** Trains `head` on `count` examples; `loss(indices)` builds a batch's loss. Returns each epoch's last loss. */
export async function fitHead(
  head: ModelState,
  count: number,
  o: FitOptions,
  loss: (indices: number[]) => Tensor,
): Promise<number[]> {
  const sgd = new Sgd(head.params, head.grads, { momentum: 0.9, weightDecay: o.weightDecay });
  const rng = new Rng(o.seed);
  const B = Math.min(o.batchSize, count);
  const stepsPerEpoch = Math.floor(count / B);
  const total = o.epochs * stepsPerEpoch;
  const losses: number[] = [];
  try {
    let step = 0;
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = rng.permutation(count);
      let last: Tensor | null = null;
      for (let s = 0; s < stepsPerEpoch; s++, step++) {
        last?.dispose();
        last = scope(() => {
          head.zeroGrad();
          const l = loss(order.slice(s * B, (s + 1) * B));
          backward(l);
          noGrad(() => sgd.step(cosineLr(o.lr, step, total)));
          return l;
        });
      }
      if (last) {
        losses.push(await last.item());
        last.dispose();
      }
    }
  } finally {
    sgd.destroy();
  }
  return losses;
}
