// Mixed precision, PyTorch's autocast in spirit: while a runtime's precision is 'mixed', conv2d
// and linear round their operands to f16 (weights, activations, and their gradients scaled per
// tensor: ops/grad-scale.ts) and accumulate in f32; their outputs, every other op, the losses and
// the optimiser stay f32. Each op's backward uses the precision its forward ran with.
// Opt-in: whether f16 operands make a step faster depends on the GPU (memory traffic halves,
// the arithmetic is the same f32 FMA) and is measured by the bench, not assumed.
import { requireHalf } from './ops/cast.js';
import type { Precision, Runtime } from './runtime.js';

export type { Precision };

export const PRECISIONS: readonly Precision[] = ['f32', 'mixed'];

/** Sets the precision of the ops recorded on `rt` from now on (checks the device can do f16). */
export function setPrecision(rt: Runtime, precision: Precision): void {
  if (!PRECISIONS.includes(precision))
    throw new Error(`precision must be one of ${PRECISIONS.join(', ')}, got '${precision}'`);
  if (precision === 'mixed') requireHalf(rt.profile.features.shaderF16, "precision 'mixed'");
  rt.precision = precision;
}

/** Runs `fn` with `rt` at `precision`, then restores the precision it had. */
export function autocast<T>(rt: Runtime, fn: () => T, precision: Precision = 'mixed'): T {
  const before = rt.precision;
  setPrecision(rt, precision);
  try {
    return fn();
  } finally {
    rt.precision = before;
  }
}
