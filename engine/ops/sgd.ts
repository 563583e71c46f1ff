// SGD with momentum and weight decay as an engine op: one fused kernel over a flat parameter
// store, its gradients and its momentum buffers (the same layout). lr is a uniform (`lr`), so a
// schedule changes it per step without a new pipeline.
import sgdSrc from '../../shaders/sgd.wgsl';
import { FlatStore } from '../flat.js';
import { live } from '../uniforms.js';

export interface SgdOptions {
  momentum: number;
  weightDecay: number;
}

export class Sgd {
  /** Momentum buffers, same layout as the parameters (saved in checkpoints). */
  readonly momentum: FlatStore;

  constructor(
    readonly params: FlatStore,
    readonly grads: FlatStore,
    readonly opts: SgdOptions,
  ) {
    if (grads.flat.size !== params.flat.size)
      throw new Error('Sgd: gradient store layout differs from the parameter store');
    this.momentum = new FlatStore(params.rt, params.entries, 'sgd.momentum');
    this.momentum.fill(0);
  }

  /** p -= lr * (momentum buffer); gradScale averages gradients summed over ranks. In a captured step lr is the live value 'lr'. */
  step(lr: number, gradScale = 1): void {
    const rt = this.params.rt;
    const n = this.params.flat.size;
    rt.dispatch(rt.kernel('sgd', sgdSrc), {
      params: { n, lr: live('lr', lr), momentum: this.opts.momentum, weightDecay: this.opts.weightDecay, gradScale },
      buffers: [this.grads.flat.buffer('sgd'), this.params.flat.buffer('sgd'), this.momentum.flat.buffer('sgd')],
      workgroups: rt.grid1d(n, 256),
      op: 'sgd',
      flops: 6 * n,
      bytes: 20 * n,
    });
  }

  /** Frees the momentum buffers (the parameter and gradient stores are the model's). */
  destroy(): void {
    this.momentum.destroy();
  }
}
