// argmax: the i32 index of the first maximum along an axis (of the flattened tensor when the
// axis is omitted), from the same kernel as max. Indices have no gradient.
import type { Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { maxWithIndex } from './reduce.js';

export function argmax(x: Tensor, axis?: number, keepDims = false): Tensor {
  const { values, indices } = noGrad(() => maxWithIndex(x, axis, keepDims, 'argmax'));
  values.dispose();
  return indices;
}
