// Capturing a step that returns tensors, and replaying it: the replay's results are views of
// the buffers the captured step wrote its results to (the program owns them), fresh each time.
import { Storage, Tensor, type DType, type Shape } from './tensor.js';
import type { Runtime } from './runtime.js';
import type { StepProgram, StepValues } from './capture.js';

export type StepTensors = Record<string, Tensor | null>;

interface OutputSlot {
  buffer: GPUBuffer;
  offset: number;
  bytes: number;
  shape: Shape;
  dtype: DType;
}

/** A captured step: its program and where each of its results lives. */
export interface CapturedStep<T extends StepTensors> {
  program: StepProgram;
  outputs: { [K in keyof T]: OutputSlot | null };
}

/** Runs `step` once, eagerly, while capturing it (Runtime.capture lists the rules). */
export function captureStep<T extends StepTensors>(
  rt: Runtime,
  step: () => T,
): { captured: CapturedStep<T>; result: T } {
  const { program, result } = rt.capture(step);
  const outputs = {} as { [K in keyof T]: OutputSlot | null };
  for (const key of Object.keys(result) as (keyof T)[]) {
    const t = result[key];
    const ref = t?.buffer('captureStep');
    outputs[key] =
      t && ref ? { buffer: ref.buffer, offset: ref.offset, bytes: t.size * 4, shape: t.shape, dtype: t.dtype } : null;
  }
  return { captured: { program, outputs }, result };
}

/** Replays a captured step with new inputs and live values; returns its results as new tensors. */
export function replayStep<T extends StepTensors>(rt: Runtime, captured: CapturedStep<T>, values: StepValues): T {
  rt.replay(captured.program, values);
  const out = {} as StepTensors;
  for (const [key, slot] of Object.entries(captured.outputs)) {
    // Not pooled: the program owns the buffer, disposing the view only drops the reference.
    out[key] = slot
      ? new Tensor(new Storage(rt, slot.buffer, slot.bytes, slot.offset, false), slot.shape, slot.dtype)
      : null;
  }
  return out as T;
}
