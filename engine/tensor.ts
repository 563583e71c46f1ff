// Tensors: contiguous row-major storage in a pooled GPU buffer. Reshape makes a view that
// shares the storage (reference counted), so it costs no copy and no kernel.
import type { BufferRef } from './gpu.js';
import type { Runtime } from './runtime.js';
import { fromHalfBits } from './half.js';
import { trackInScope } from './scope.js';

/** f16 tensors hold operands of the mixed-precision kernels (autocast); they take no gradient. */
export type DType = 'f32' | 'f16' | 'i32' | 'u32';
export type Shape = readonly number[];

/** A node of the autograd tape: the op that made a tensor and how to send gradients back. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /**
   * The gradient of the output, and when the output was used several times and `gradTerms` > 1,
   * up to gradTerms - 1 further terms that the rule adds itself (e.g. on read in its kernels),
   * sparing a separate sum.
   */
  backward(grad: Tensor, more: Tensor[]): (Tensor | null)[];
  /** How many gradient terms the rule takes unsummed (default 1: autograd sums them first). */
  gradTerms?: number;
}

/**
 * Reference-counted bytes on the GPU: a whole pooled buffer, or a slice of a buffer owned by
 * someone else (a parameter inside one flat parameter buffer), which is never pooled.
 */
export class Storage {
  refs = 1;
  constructor(
    readonly rt: Runtime,
    readonly buffer: GPUBuffer,
    readonly bytes: number,
    readonly offset = 0,
    private readonly pooled = true,
  ) {}
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0 && this.pooled) this.rt.pool.release(this.buffer);
  }
}

/** Bytes of `n` elements of `dtype` as bound: whole 4-byte words, at least one. */
export function storageBytes(n: number, dtype: DType): number {
  return Math.max(4, Math.ceil((n * (dtype === 'f16' ? 2 : 4)) / 4) * 4);
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function checkShape(shape: Shape, op: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new Error(`${op}: invalid shape ${formatShape(shape)}: sizes must be non-negative integers`);
  }
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  name = '';
  private disposedFlag = false;

  constructor(
    readonly storage: Storage,
    shape: Shape,
    readonly dtype: DType = 'f32',
  ) {
    this.shape = Object.freeze([...shape]);
    this.size = sizeOf(shape);
    trackInScope(this);
  }

  get rt(): Runtime {
    return this.storage.rt;
  }
  get rank(): number {
    return this.shape.length;
  }
  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** The bytes a kernel binds, checked for use after dispose. */
  buffer(op: string): BufferRef {
    if (this.disposedFlag) {
      throw new Error(
        `${op}: tensor ${this.describe()} was used after dispose(); keep it alive (scope keep() or no dispose) until its last use`,
      );
    }
    const s = this.storage;
    return { buffer: s.buffer, offset: s.offset, size: storageBytes(this.size, this.dtype) };
  }

  describe(): string {
    return `${this.name ? this.name + ' ' : ''}${this.dtype}${formatShape(this.shape)}`;
  }

  /** Marks this tensor as a leaf that collects gradients in .grad. */
  requireGrad(flag = true): this {
    if (flag && this.dtype !== 'f32')
      throw new Error(`requireGrad: only f32 tensors can have gradients, ${this.describe()} is ${this.dtype}`);
    this.requiresGrad = flag;
    return this;
  }

  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.storage.release();
    this.node = null;
  }

  /** Reads the values back to the CPU (submits pending work). */
  async data(): Promise<Float32Array | Int32Array | Uint32Array> {
    const ref = this.buffer('data');
    const raw = await this.rt.read(ref.buffer, ref.size, ref.offset);
    if (this.dtype === 'f16') return fromHalfBits(new Uint16Array(raw, 0, this.size));
    if (this.dtype === 'f32') return new Float32Array(raw, 0, this.size);
    return this.dtype === 'i32' ? new Int32Array(raw, 0, this.size) : new Uint32Array(raw, 0, this.size);
  }

  async item(): Promise<number> {
    if (this.size !== 1)
      throw new Error(`item: tensor ${this.describe()} has ${this.size} elements; item() needs exactly one`);
    return (await this.data())[0];
  }
}
