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

/** Throws a message naming the problem unless `rt` can run at `precision`. */
export function checkPrecision(rt: Runtime, precision: Precision, name = 'precision'): void {
  if (!PRECISIONS.includes(precision))
    throw new Error(`${name} must be one of ${PRECISIONS.join(', ')}, got '${precision}'`);
  if (precision === 'mixed') requireHalf(rt.profile.features.shaderF16, `${name} 'mixed'`);
}

/** Sets the precision of the ops recorded on `rt` from now on (checks the device can do f16). */
export function setPrecision(rt: Runtime, precision: Precision): void {
  checkPrecision(rt, precision);
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

/** `work` with every resumption (the code between its pauses) run at `precision`. */
export function* withPrecision<Y, R, N>(
  rt: Runtime,
  precision: Precision,
  work: Generator<Y, R, N>,
): Generator<Y, R, N> {
  let sent = undefined as N; // the first next() ignores its argument
  for (;;) {
    const r = autocast(rt, () => work.next(sent), precision);
    if (r.done) return r.value;
    sent = yield r.value;
  }
}
