// The one check of a loaded tensor, used by resume, export, features and eval: present, F32 of
// exactly the shape the model needs, and finite. Errors name the tensor and the file.
import type { SafetensorsFile } from '../engine/safetensors.js';

/**
 * `file`'s tensor `name` as F32 values. `what` names the file, `against` the model in the
 * mismatch messages, `hint` says what a missing tensor suggests.
 */
export function expectTensor(
  file: SafetensorsFile,
  name: string,
  shape: readonly number[],
  what: string,
  against: string,
  hint = '',
): Float32Array {
  const t = file.tensors.get(name);
  if (!t) throw new Error(`${what} does not match ${against}: tensor '${name}' is missing${hint ? ` (${hint})` : ''}`);
  if (t.dtype !== 'F32' || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(
      `${what} does not match ${against}: '${name}' is ${t.dtype}[${t.shape.join(', ')}], the model needs F32[${shape.join(', ')}]`,
    );
  }
  const values = t.data as Float32Array;
  if (!values.every(Number.isFinite)) throw new Error(`${what}: '${name}' holds NaN or infinite values`);
  return values;
}
