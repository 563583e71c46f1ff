// Broadcasting and its adjoint: expandTo materialises a broadcast, and its gradient sums back
// over the broadcast axes (sumTo), which binary ops also use for their operands' gradients.
// Here, above both shape.ts and reduce.ts, so neither imports the other for it.
import type { Shape, Tensor } from '../tensor.js';
import { record } from '../autograd.js';
import { broadcastCopy, reshape } from './shape.js';
import { sum } from './reduce.js';

/** Broadcasts x to `shape` (NumPy rules), materialised. */
export function expandTo(x: Tensor, shape: Shape): Tensor {
  return record(broadcastCopy(x, shape), 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

/** Sums a broadcast gradient back to `shape` (returns g itself when no summing is needed). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const off = g.rank - shape.length;
  const axes = g.shape.map((_, i) => i).filter((i) => i < off || (shape[i - off] === 1 && g.shape[i] !== 1));
  return reshape(sum(g, axes, true), shape);
}
