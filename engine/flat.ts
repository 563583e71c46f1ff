// Many named tensors in ONE GPU buffer (each at an aligned offset), plus a tensor spanning the
// whole buffer. A model's parameters, their gradients and the optimiser state live in such
// stores with the same layout, so SGD, the momentum encoder's EMA and gradient all-reduce are
// each a single dispatch or copy over everything.
import { Storage, Tensor, sizeOf, type Shape } from './tensor.js';
import type { Runtime } from './runtime.js';
import { fillInPlace } from './ops/pointwise.js';

export interface FlatEntry {
  name: string;
  shape: Shape;
}

/** The multiple, in floats, of every offset at which a view of a buffer may be bound. */
export const bindingAlignment = (rt: Runtime): number => Math.max(1, rt.limits.minStorageBufferOffsetAlignment / 4);

/** Floats one storage binding (and one buffer) may hold. */
export const bindingElements = (rt: Runtime): number =>
  Math.min(rt.limits.maxStorageBufferBindingSize, rt.limits.maxBufferSize) / 4;

/** The store that owns each store buffer (weight-pack.ts keeps re-laid weights per store). */
const owners = new WeakMap<GPUBuffer, FlatStore>();

/** The FlatStore whose buffer this is, if any. */
export const storeOwning = (buffer: GPUBuffer): FlatStore | undefined => owners.get(buffer);

export class FlatStore {
  readonly tensors = new Map<string, Tensor>();
  readonly offsets = new Map<string, number>();
  /** All elements, alignment gaps included (they stay zero). */
  readonly flat: Tensor;
  readonly buffer: GPUBuffer;
  private destroyed = false;
  /** Things computed from the store and kept beside it (destroyed with it). */
  private derivedByKey = new Map<string, { destroy(): void }>();

  constructor(
    readonly rt: Runtime,
    readonly entries: readonly FlatEntry[],
    readonly label = 'flat',
  ) {
    const align = bindingAlignment(rt);
    let at = 0;
    for (const e of entries) {
      if (this.offsets.has(e.name)) throw new Error(`${label}: duplicate tensor name '${e.name}'`);
      this.offsets.set(e.name, at);
      at += Math.ceil(Math.max(1, sizeOf(e.shape)) / align) * align;
    }
    const total = Math.max(at, 1);
    this.buffer = rt.device.createBuffer({
      label,
      size: total * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    owners.set(this.buffer, this);
    // Views are not pooled: the store owns the buffer.
    this.flat = new Tensor(new Storage(rt, this.buffer, total * 4, 0, false), [total]);
    for (const e of entries) {
      const n = sizeOf(e.shape);
      const t = new Tensor(new Storage(rt, this.buffer, n * 4, this.offsets.get(e.name)! * 4, false), e.shape);
      t.name = e.name;
      this.tensors.set(e.name, t);
    }
  }

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.label}: no tensor named '${name}'`);
    return t;
  }

  /** Sets every element (alignment gaps too). */
  fill(value: number): void {
    fillInPlace(this.flat, value, `${this.label}.fill`);
  }

  /** Uploads values for one named tensor. */
  write(name: string, values: Float32Array): void {
    const t = this.get(name);
    if (values.length !== t.size)
      throw new Error(`${this.label}: '${name}' has ${t.size} elements, got ${values.length}`);
    if (this.rt.capturing)
      throw new Error(
        `${this.label}: write('${name}') inside a captured step would not be replayed; upload per-step values as named inputs (inputOn)`,
      );
    this.rt.flush(); // commands recorded so far must see the old values
    this.rt.writeBuffer(this.buffer, values, this.offsets.get(name)! * 4);
  }

  /** Reads every named tensor back (one readback for the whole store). */
  async readAll(): Promise<Map<string, Float32Array>> {
    const all = new Float32Array(await this.flat.data());
    const out = new Map<string, Float32Array>();
    for (const [name, t] of this.tensors) {
      const at = this.offsets.get(name)!;
      out.set(name, all.slice(at, at + t.size));
    }
    return out;
  }

  /** The object kept beside the store under `key`, made by `make` on first use and destroyed with the store. */
  derived<T extends { destroy(): void }>(key: string, make: () => T): T {
    let d = this.derivedByKey.get(key);
    if (!d) this.derivedByKey.set(key, (d = make()));
    return d as T;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.rt.flush();
    for (const d of this.derivedByKey.values()) d.destroy();
    this.buffer.destroy();
  }
}
