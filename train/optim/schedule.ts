// Learning-rate schedule of DenseCL/MoCo-v2: base lr scaled linearly with the batch
// (0.03 per 256 images), cosine decay to zero over the run, no warm-up.
export function scaledLr(baseLrPer256: number, batchSize: number): number {
  return (baseLrPer256 * batchSize) / 256;
}

export function cosineLr(lr: number, step: number, totalSteps: number): number {
  if (totalSteps <= 0) return lr;
  const t = Math.min(Math.max(step / totalSteps, 0), 1);
  return 0.5 * lr * (1 + Math.cos(Math.PI * t));
}
