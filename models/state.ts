// A model's tensors: parameters (with gradients), and buffers such as BN running statistics,
// each group in one flat store. Parameters are leaves whose .grad is a view into the gradient
// store, so backward accumulates straight into it and zeroing is one fill.
import { FlatStore, Rng, type Runtime, type Tensor } from '../engine/index.js';

export interface ParamSpec {
  name: string;
  shape: number[];
  /** Initial values, drawn from the model's seeded generator. */
  init(rng: Rng, size: number): Float32Array;
}

export interface BufferSpec {
  name: string;
  shape: number[];
  value: number;
}

export class ModelState {
  readonly params: FlatStore;
  readonly grads: FlatStore;
  readonly buffers: FlatStore;

  constructor(
    rt: Runtime,
    readonly paramSpecs: ParamSpec[],
    readonly bufferSpecs: BufferSpec[],
    seed: number,
    label: string,
  ) {
    this.params = new FlatStore(rt, paramSpecs, `${label}.params`);
    this.grads = new FlatStore(rt, paramSpecs, `${label}.grads`);
    this.buffers = new FlatStore(
      rt,
      bufferSpecs.length ? bufferSpecs : [{ name: '_none', shape: [1] }],
      `${label}.buffers`,
    );
    const rng = new Rng(seed);
    for (const s of paramSpecs)
      this.params.write(
        s.name,
        s.init(
          rng,
          s.shape.reduce((a, b) => a * b, 1),
        ),
      );
    this.buffers.fill(0);
    for (const b of bufferSpecs)
      if (b.value !== 0) this.buffers.write(b.name, new Float32Array(b.shape.reduce((a, c) => a * c, 1)).fill(b.value));
    this.grads.fill(0);
    for (const [name, p] of this.params.tensors) {
      p.requireGrad();
      p.grad = this.grads.get(name);
    }
  }

  p(name: string): Tensor {
    return this.params.get(name);
  }

  buffer(name: string): Tensor {
    return this.buffers.get(name);
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  /** Turns gradient recording for all parameters on or off (off for a key encoder). */
  setRequiresGrad(flag: boolean): void {
    for (const [name, p] of this.params.tensors) {
      p.requiresGrad = flag;
      p.grad = flag ? this.grads.get(name) : null;
    }
  }

  destroy(): void {
    this.params.destroy();
    this.grads.destroy();
    this.buffers.destroy();
  }
}

/** normal(0, sqrt(2 / fan_in)): kaiming init for layers followed by ReLU. */
export function kaimingNormal(fanIn: number) {
  return (rng: Rng, n: number): Float32Array => {
    const std = Math.sqrt(2 / fanIn);
    return Float32Array.from({ length: n }, () => rng.normal() * std);
  };
}

/** uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for conv/linear weight and bias. */
export function torchDefaultUniform(fanIn: number) {
  return (rng: Rng, n: number): Float32Array => {
    const b = 1 / Math.sqrt(fanIn);
    return Float32Array.from({ length: n }, () => rng.uniform(-b, b));
  };
}

export const constant =
  (v: number) =>
  (_rng: Rng, n: number): Float32Array =>
    new Float32Array(n).fill(v);

/** normal(0, std): e.g. the 0.01 of a linear probe's classifier. */
export const normal =
  (std: number) =>
  (rng: Rng, n: number): Float32Array =>
    Float32Array.from({ length: n }, () => rng.normal() * std);
