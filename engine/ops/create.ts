// Tensor creation on a runtime: from values, constants and seeded random draws.
import { type Tensor, sizeOf, type DType, type Shape } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import { Rng } from '../random.js';
import { fromArray } from './alloc.js';
import { fillTensor } from './pointwise.js';

export function tensorOn(rt: Runtime, data: ArrayLike<number>, shape?: Shape, dtype: DType = 'f32'): Tensor {
  return fromArray(rt, data, shape ?? [data.length], dtype);
}

/**
 * A tensor of values that change from step to step (images, a permutation): in a captured step
 * the upload is the input `name`, and each replay is given its new values under that name.
 */
export function inputOn(
  rt: Runtime,
  name: string,
  data: ArrayLike<number>,
  shape: Shape,
  dtype: DType = 'f32',
): Tensor {
  return fromArray(rt, data, shape, dtype, `input '${name}'`, name);
}

export function fullOn(rt: Runtime, shape: Shape, value: number): Tensor {
  return fillTensor(rt, shape, value, value === 0 ? 'zeros' : 'full');
}

/** Standard normal values from a seeded generator (or a given Rng, advanced in place). */
export function randnOn(rt: Runtime, shape: Shape, seed: number | Rng = 0, std = 1): Tensor {
  const rng = typeof seed === 'number' ? new Rng(seed) : seed;
  const v = new Float32Array(sizeOf(shape));
  for (let i = 0; i < v.length; i++) v[i] = rng.normal() * std;
  return fromArray(rt, v, shape, 'f32', 'randn');
}

export function randOn(rt: Runtime, shape: Shape, seed: number | Rng = 0, lo = 0, hi = 1): Tensor {
  const rng = typeof seed === 'number' ? new Rng(seed) : seed;
  const v = new Float32Array(sizeOf(shape));
  for (let i = 0; i < v.length; i++) v[i] = rng.uniform(lo, hi);
  return fromArray(rt, v, shape, 'f32', 'rand');
}
