// Output allocation and shape helpers shared by the ops.
import { toHalfBits } from '../half.js';
import { Storage, Tensor, sizeOf, checkShape, formatShape, storageBytes, type DType, type Shape } from '../tensor.js';
import type { Runtime } from '../runtime.js';

export function empty(rt: Runtime, shape: Shape, dtype: DType = 'f32', op = 'empty'): Tensor {
  checkShape(shape, op);
  const bytes = storageBytes(sizeOf(shape), dtype);
  return new Tensor(new Storage(rt, rt.pool.acquire(bytes, false), bytes), shape, dtype);
}

/** A tensor holding `data`; `input` names an upload that a captured step takes anew at each replay. */
export function fromArray(
  rt: Runtime,
  data: ArrayLike<number>,
  shape: Shape,
  dtype: DType = 'f32',
  op = 'tensor',
  input: string | null = null,
): Tensor {
  checkShape(shape, op);
  const n = sizeOf(shape);
  if (data.length !== n)
    throw new Error(`${op}: ${data.length} values do not fill shape ${formatShape(shape)} (${n} elements)`);
  const bytes = storageBytes(n, dtype);
  return new Tensor(new Storage(rt, rt.upload(typedFor(data, dtype, bytes), bytes, input), bytes), shape, dtype);
}

/** The values as the GPU stores them, padded to whole 4-byte words (GPU writes are word-sized). */
function typedFor(data: ArrayLike<number>, dtype: DType, bytes: number): ArrayBufferView {
  if (dtype === 'f16') {
    const bits = new Uint16Array(bytes / 2);
    bits.set(toHalfBits(data));
    return bits;
  }
  const Typed = dtype === 'f32' ? Float32Array : dtype === 'i32' ? Int32Array : Uint32Array;
  return data instanceof Typed ? data : Typed.from(data);
}

export function requireF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== 'f32')
      throw new Error(`${op}: expects f32 tensors, got ${t.describe()}; convert indices with toFloat() first`);
    t.buffer(op); // a disposed input fails here, before the op allocates its output
  }
}

export function sameRuntime(op: string, ...ts: Tensor[]): Runtime {
  const rt = ts[0].rt;
  for (const t of ts) if (t.rt !== rt) throw new Error(`${op}: tensors live on different GPU devices`);
  return rt;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export const MAX_RANK = 8;

/** Pads a per-dimension list to the 8 slots of an array<vec4<u32>, 2> uniform field. */
export function dims8(values: readonly number[], op: string): number[] {
  if (values.length > MAX_RANK)
    throw new Error(`${op}: tensors of rank ${values.length} exceed the supported rank ${MAX_RANK}`);
  const out = new Array<number>(MAX_RANK).fill(0);
  values.forEach((v, i) => (out[i] = v));
  return out;
}

/** Normalises possibly negative axes and checks them against the rank. */
export function normAxes(axes: number | readonly number[] | undefined, rank: number, op: string): number[] {
  const list = axes === undefined ? [...Array(rank).keys()] : typeof axes === 'number' ? [axes] : [...axes];
  const out = list.map((a) => {
    const n = a < 0 ? a + rank : a;
    if (!Number.isInteger(n) || n < 0 || n >= rank)
      throw new Error(`${op}: axis ${a} is out of range for a tensor of rank ${rank}`);
    return n;
  });
  if (new Set(out).size !== out.length) throw new Error(`${op}: repeated axis in [${list.join(', ')}]`);
  return out.sort((a, b) => a - b);
}
