// Images uploaded as bytes and normalised on the GPU: a batch of 224 px images is 4x smaller as
// bytes than as floats, which matters once a step's dispatches cost little to issue (replay).
import normalizeSrc from '../../shaders/normalize_pixels.wgsl';
import { type Tensor, formatShape, sizeOf, type Shape } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import { empty } from './alloc.js';
import { inputOn } from './create.js';

/** Per-channel normalisation: y = (x / 255 - mean[c]) / std[c]. */
export interface PixelNormalization {
  mean: readonly number[];
  std: readonly number[];
}

/**
 * A [N, C, H, W] f32 tensor from bytes in that order (0..255). The bytes are the upload `name`
 * (a replay takes new ones under that name, as a Uint32Array of the packed words: pixelWords).
 */
export function pixelsOn(rt: Runtime, name: string, bytes: Uint8Array, shape: Shape, norm: PixelNormalization): Tensor {
  const op = `pixels '${name}'`;
  const n = sizeOf(shape);
  const C = shape[1];
  if (shape.length !== 4) throw new Error(`${op}: images are [N, C, H, W], got ${formatShape(shape)}`);
  if (bytes.length !== n)
    throw new Error(`${op}: ${bytes.length} bytes do not fill ${formatShape(shape)} (${n} values)`);
  if (C > 4 || norm.mean.length !== C || norm.std.length !== C)
    throw new Error(
      `${op}: ${C} channels need ${C} means and stds (at most 4 channels), got ${norm.mean.length} and ${norm.std.length}`,
    );
  if (norm.std.some((s) => !(s > 0)))
    throw new Error(`${op}: every std must be positive, got [${norm.std.join(', ')}]`);
  const words = pixelWords(bytes);
  const packed = inputOn(rt, name, words, [words.length], 'u32');
  const y = empty(rt, shape, 'f32', op);
  rt.dispatch(rt.kernel('normalize_pixels', normalizeSrc), {
    params: {
      words: words.length,
      n,
      plane: shape[2] * shape[3],
      channels: C,
      mean: [...norm.mean],
      inv_std: norm.std.map((s) => 1 / s),
    },
    buffers: [packed.buffer(op), y.buffer(op)],
    workgroups: rt.grid1d(words.length, 256),
    op: 'normalizePixels',
    bytes: n * 5,
    shapes: formatShape(shape),
  });
  packed.dispose();
  return y;
}

/** The bytes as u32 words, zero-padded to a whole word (a copy only when they are not aligned or whole). */
export function pixelWords(bytes: Uint8Array): Uint32Array {
  if (bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0)
    return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  return new Uint32Array(padded.buffer);
}
