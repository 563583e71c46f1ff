// Public API of the engine, in the spirit of PyTorch with camelCase names.
import type { Tensor, DType, Shape } from './tensor.js';
import { runBackward } from './autograd.js';
import { runtime } from './context.js';
import { tensorOn, fullOn, randnOn, randOn } from './ops/create.js';
import { add } from './ops/binary.js';
import type { Rng } from './random.js';
import { axpyInPlace, copyInto } from './ops/inplace.js';
import { empty } from './ops/alloc.js';

export { Tensor, Storage, type DType, type Shape, type GradNode } from './tensor.js';
export { Runtime, type DispatchInfo, type DispatchObserver } from './runtime.js';
export { acquireGpu, type GpuHandle } from './gpu.js';
export { init, runtime, setRuntime, type InitOptions } from './context.js';
export type { DeviceProfile, ProfileOverrides, KernelChoices } from './device-profile.js';
export type { TuneMode, TuneExport, Decision } from './tune/tuner.js';
export { noGrad, isGradEnabled, detach, record } from './autograd.js';
export { scope, keep } from './scope.js';
export { StepProgram, type StepValues } from './capture.js';
export { captureStep, replayStep, type CapturedStep, type StepTensors } from './replay.js';
export { live, type LiveValue } from './uniforms.js';
export { inputOn } from './ops/create.js';
export { Rng } from './random.js';
export type { MemoryReport } from './pool.js';
export { add, sub, mul, div } from './ops/binary.js';
export { neg, exp, log, sqrt, relu, affine, powScalar } from './ops/unary.js';
export { sum, mean, max, maxWithIndex } from './ops/reduce.js';
export { reshape, permute, transpose } from './ops/shape.js';
export { expandTo, sumTo } from './ops/broadcast.js';
export { matmul } from './ops/matmul.js';
export { conv2d, type Conv2dOptions } from './ops/conv2d/index.js';
export { batchNorm2d, type BatchNormOptions } from './ops/batchnorm.js';
export { maxPool2d, type MaxPoolOptions } from './ops/maxpool.js';
export { adaptiveAvgPool2d } from './ops/avgpool.js';
export { linear } from './ops/linear.js';
export { concat } from './ops/concat.js';
export { slice } from './ops/slice.js';
export { gather } from './ops/gather.js';
export { indexSelect } from './ops/index_select.js';
export { argmax } from './ops/argmax.js';
export { l2Normalize } from './ops/normalize.js';
export { logSoftmax } from './ops/softmax.js';
export { crossEntropy, type Reduction } from './ops/cross_entropy.js';
export { bilinearUpsample2d } from './ops/upsample.js';
export { toFloat, toHalf } from './ops/cast.js';
export { scaledHalf, type ScaledHalf } from './ops/grad-scale.js';
export { autocast, setPrecision, checkPrecision, withPrecision, PRECISIONS, type Precision } from './autocast.js';
export { axpyInPlace, copyInto } from './ops/inplace.js';
export { fillInPlace } from './ops/pointwise.js';
export { FlatStore, type FlatEntry } from './flat.js';
export {
  profile,
  Profiler,
  timestampCostMs,
  AUTO_OVERHEAD,
  type KernelRecord,
  type ProfileResult,
  type ProfileOptions,
} from './profiler.js';
export { measurePeak, type Peak } from './peak/peak.js';
export {
  aggregate,
  formatTable,
  markdownTable,
  shortKernelNames,
  chromeTrace,
  describePeak,
  type AggregateRow,
} from './profile-report.js';

export function tensor(data: ArrayLike<number>, shape?: Shape, dtype: DType = 'f32'): Tensor {
  return tensorOn(runtime(), data, shape, dtype);
}
export const zeros = (shape: Shape): Tensor => fullOn(runtime(), shape, 0);
export const ones = (shape: Shape): Tensor => fullOn(runtime(), shape, 1);
export const full = (shape: Shape, value: number): Tensor => fullOn(runtime(), shape, value);
export const randn = (shape: Shape, seed: number | Rng = 0, std = 1): Tensor => randnOn(runtime(), shape, seed, std);
export const rand = (shape: Shape, seed: number | Rng = 0, lo = 0, hi = 1): Tensor =>
  randOn(runtime(), shape, seed, lo, hi);

/** Back-propagates from `root` (a scalar unless `grad` is given) into the .grad of leaves. */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!grad && root.size !== 1) {
    throw new Error(
      `backward: ${root.describe()} is not a scalar; pass a gradient of the same shape, or reduce it first (sum or mean)`,
    );
  }
  if (grad && (grad.rank !== root.rank || grad.shape.some((d, i) => d !== root.shape[i]))) {
    throw new Error(`backward: gradient ${grad.describe()} does not match ${root.describe()}`);
  }
  const seed = grad ?? fullOn(root.rt, root.shape, 1);
  try {
    runBackward(root, seed, add, (into, x) => axpyInPlace(into, x, 1, 1, 'grad.accumulate'), clone);
  } finally {
    if (!grad) seed.dispose();
  }
}

/** A copy of x with its own storage, off the tape. */
export function clone(x: Tensor): Tensor {
  const y = empty(x.rt, x.shape, x.dtype, 'clone');
  copyInto(y, x, 'clone');
  return y;
}

/** Clears (disposes) the gradients of the given parameters. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
