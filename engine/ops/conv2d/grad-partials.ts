// The weight-gradient partials [chunks, O*C*KH*KW] of the convolutions whose .grad lives in a
// gradient store, written into one persistent area beside that store and summed into their
// .grads by ONE dispatch when the backward pass ends (or when the area is full), instead of one
// reduction per convolution (a ResNet-50 step ran 57 of them).
//
// The area is filled in the order the partials come and reused from its start after each sum,
// so it holds at most one binding (and at most MAX_AREA_BYTES), not every partial of the pass at
// once: a ResNet-50 at 224 px, batch 32 writes ~1.5 GB of partials per backward pass. The first
// backward pass only measures what it would need (its convolutions reduce their partials
// themselves); the area is made (or grown, retiring the old buffer so that captured programs
// binding it are captured again) when that pass ends, and used from the next one on.
//
// The sum adds each element's chunks in the same order as the reduction it replaces (bit for
// bit, see partials_sum.wgsl). A .grad given a second partials in the same backward pass has its
// first ones summed before, so the order of its contributions stays that of the calls too.
import sumSrc from '../../../shaders/conv2d/partials_sum.wgsl';
import { atBackwardEnd } from '../../autograd.js';
import { bindingAlignment, bindingElements, storeOwning, type FlatStore } from '../../flat.js';
import type { Kernel, Runtime } from '../../runtime.js';
import { Storage, Tensor } from '../../tensor.js';
import { empty, fromArray } from '../alloc.js';
import { sumIsOnePass } from '../reduce.js';

/** The area's largest size: a few large convolutions' partials, so that a sum serves many. */
const MAX_AREA_BYTES = 256 << 20;
/** Words per entry of the table partials_sum.wgsl reads. */
const ENTRY_WORDS = 5;
const WG = 256;

interface Pending {
  /** The partials' first element in the area. */
  at: number;
  chunks: number;
  /** Elements of one chunk (of the .grad). */
  grad: number;
  /** The .grad's first element in the gradient store. */
  dst: number;
}

export class GradPartials {
  private area: GPUBuffer | null = null;
  /** Elements of the area (0 before the first backward pass ends). */
  private elements = 0;
  /** Elements the running backward pass would use without a sum before its end (at most `cap`). */
  private wanted = 0;
  /** The next free element of the area. */
  private used = 0;
  private pending: Pending[] = [];
  /** Whether the end of the running backward pass is booked. */
  private booked = false;
  private readonly cap: number;
  private readonly align: number;

  constructor(
    private readonly rt: Runtime,
    private readonly store: FlatStore,
    cap = Math.min(bindingElements(rt), MAX_AREA_BYTES / 4),
  ) {
    this.cap = Math.floor(cap);
    this.align = bindingAlignment(rt);
  }

  /**
   * Where the partials [chunks, grad] of the .grad at element `dst` of the store go, to be
   * summed into it when the backward pass ends; null when they cannot wait (outside a backward
   * pass, larger than the area may be, or the area not made yet): the caller sums them itself.
   */
  slot(dst: number, chunks: number, grad: number, op: string): Tensor | null {
    if (!this.booked) {
      if (!atBackwardEnd(() => this.endBackward(op))) return null;
      this.booked = true;
    }
    const size = chunks * grad;
    if (size > this.cap) return null;
    this.wanted = Math.min(this.cap, this.alignUp(this.wanted) + size);
    if (size > this.elements) return null;
    // Full, or this .grad already waits for a sum: what waits is summed first.
    if (this.alignUp(this.used) + size > this.elements || this.pending.some((p) => p.dst === dst)) this.sum(op);
    const at = this.alignUp(this.used);
    this.used = at + size;
    this.pending.push({ at, chunks, grad, dst });
    return new Tensor(new Storage(this.rt, this.area!, size * 4, at * 4, false), [chunks, grad]);
  }

  destroy(): void {
    this.area?.destroy();
    this.area = null;
  }

  private kernel(): Kernel {
    return this.rt.kernel('conv2d_partials_sum', sumSrc);
  }

  private alignUp(n: number): number {
    return Math.ceil(n / this.align) * this.align;
  }

  private endBackward(op: string): void {
    this.booked = false;
    this.sum(op);
    if (this.wanted > this.elements) {
      if (this.area) this.rt.retire(this.area);
      this.elements = this.wanted;
      this.area = this.rt.device.createBuffer({
        label: `${this.store.label}.conv-grad-partials`,
        size: this.elements * 4,
        usage: GPUBufferUsage.STORAGE,
      });
      // The pipeline is built now, beside the step's other new ones, not inside the next step.
      this.kernel();
    }
    this.wanted = 0;
  }

  /** One dispatch adding every pending entry's chunks into its .grad; the area is free again. */
  private sum(op: string): void {
    const pending = this.pending;
    this.pending = [];
    this.used = 0;
    if (pending.length === 0) return;
    const rt = this.rt;
    const words = new Uint32Array(pending.length * ENTRY_WORDS);
    let groups = 0;
    pending.forEach((p, i) => {
      words.set([groups, p.at, p.chunks, p.grad, p.dst], i * ENTRY_WORDS);
      groups += Math.ceil(p.grad / WG);
    });
    const table = fromArray(rt, words, [words.length], 'u32', op);
    const partials = pending.reduce((acc, p) => acc + p.chunks * p.grad, 0);
    const grads = pending.reduce((acc, p) => acc + p.grad, 0);
    rt.dispatch(this.kernel(), {
      params: { entries: pending.length },
      buffers: [table.buffer(op), this.area!, this.store.buffer],
      workgroups: rt.grid1d(groups * WG, WG),
      op,
      flops: partials,
      bytes: 4 * (partials + 2 * grads),
      shapes: `${pending.length} weight gradients of ${this.store.label}`,
    });
    table.dispose();
  }
}

/** The key of a gradient store's partials area among the things derived from it. */
export const GRAD_PARTIALS = 'conv2d.grad-partials';

/**
 * Where a weight gradient's partials [chunks, grad] are written: a place in the partials area
 * of the gradient store holding `into` (deferred: summed into `into` by the time the backward
 * pass ends), or a pooled tensor the caller sums (sumPartials).
 */
export function partialsFor(
  rt: Runtime,
  into: Tensor | null,
  chunks: number,
  grad: number,
  op: string,
): { partial: Tensor; deferred: boolean } {
  const ref = into?.buffer(op);
  // Only where the reduction it replaces is one pass (the same order of additions).
  const store =
    ref && into!.size === grad && chunks > 1 && sumIsOnePass(grad, chunks) ? storeOwning(ref.buffer) : undefined;
  const slot = store
    ? store.derived(GRAD_PARTIALS, () => new GradPartials(rt, store)).slot(ref!.offset / 4, chunks, grad, op)
    : null;
  return slot ? { partial: slot, deferred: true } : { partial: empty(rt, [chunks, grad], 'f32', op), deferred: false };
}
