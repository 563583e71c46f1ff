// Differentiable elementwise functions of one tensor, as a table: the WGSL expression of the
// forward pass and the backward rule side by side.
import type { Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { unaryMap, binaryMap } from './pointwise.js';

interface UnaryDef {
  expr: string;
  flops: number;
  /** Gradient with respect to x, given x, the output y and the incoming gradient g. */
  grad(x: Tensor, y: Tensor, g: Tensor): Tensor;
}

const table = {
  neg: { expr: '-v', flops: 1, grad: (_x, _y, g) => unaryMap(g, '-v', 'neg.backward') },
  exp: { expr: 'exp(v)', flops: 4, grad: (_x, y, g) => binaryMap(g, y, 'a * b', 'exp.backward') },
  log: { expr: 'log(v)', flops: 4, grad: (x, _y, g) => binaryMap(g, x, 'a / b', 'log.backward') },
  sqrt: { expr: 'sqrt(v)', flops: 4, grad: (_x, y, g) => binaryMap(g, y, '0.5 * a / b', 'sqrt.backward') },
  relu: {
    expr: 'max(v, 0.0)',
    flops: 1,
    grad: (x, _y, g) => binaryMap(g, x, 'select(0.0, a, b > 0.0)', 'relu.backward'),
  },
} satisfies Record<string, UnaryDef>;

function unary(name: keyof typeof table, x: Tensor): Tensor {
  const def: UnaryDef = table[name];
  const y = unaryMap(x, def.expr, name, 0, 0, def.flops);
  return record(y, name, [x], (g) => [def.grad(x, y, g)]);
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);

/** alpha * x + beta: the scalar forms of add, sub, mul and div. */
export function affine(x: Tensor, alpha: number, beta: number, op = 'affine'): Tensor {
  const y = unaryMap(x, 'alpha * v + beta', op, alpha, beta, 2);
  return record(y, op, [x], (g) => [unaryMap(g, 'alpha * v', `${op}.backward`, alpha)]);
}

/** x ** p for a constant p. */
export function powScalar(x: Tensor, p: number): Tensor {
  const y = unaryMap(x, 'pow(v, alpha)', 'pow', p, 0, 4);
  return record(y, 'pow', [x], (g) => [
    binaryMap(g, x, `a * ${p.toExponential()} * pow(b, ${(p - 1).toExponential()})`, 'pow.backward', 4),
  ]);
}
