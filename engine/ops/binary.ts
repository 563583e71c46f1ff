// Differentiable elementwise arithmetic of two tensors with broadcasting. Each gradient is
// summed back over the broadcast dimensions to its input's shape.
import type { Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { binaryMap } from './pointwise.js';
import { affine, neg } from './unary.js';
import { sumTo } from './broadcast.js';

export type Operand = Tensor | number;

export function add(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return affine(a, 1, b, 'add');
  const c = binaryMap(a, b, 'a + b', 'add');
  return record(c, 'add', [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

export function sub(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return affine(a, 1, -b, 'sub');
  const c = binaryMap(a, b, 'a - b', 'sub');
  return record(c, 'sub', [a, b], (g) => [sumTo(g, a.shape), b.requiresGrad ? neg(sumTo(g, b.shape)) : null]);
}

export function mul(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return affine(a, b, 0, 'mul');
  const c = binaryMap(a, b, 'a * b', 'mul');
  return record(c, 'mul', [a, b], (g) => [
    a.requiresGrad ? sumTo(binaryMap(g, b, 'a * b', 'mul.backward'), a.shape) : null,
    b.requiresGrad ? sumTo(binaryMap(g, a, 'a * b', 'mul.backward'), b.shape) : null,
  ]);
}

export function div(a: Tensor, b: Operand): Tensor {
  if (typeof b === 'number') return affine(a, 1 / b, 0, 'div');
  const c = binaryMap(a, b, 'a / b', 'div');
  return record(c, 'div', [a, b], (g) => [
    a.requiresGrad ? sumTo(binaryMap(g, b, 'a / b', 'div.backward'), a.shape) : null,
    // d(a/b)/db = -c / b
    b.requiresGrad
      ? sumTo(binaryMap(binaryMap(g, c, 'a * b', 'div.backward'), b, '-a / b', 'div.backward', 2), b.shape)
      : null,
  ]);
}
